import os

import numpy as np
import pytest
import torch
from dphm.core.errors import DPHMError
from dphm.core.geometry.io import read_ply, write_obj, write_ply
from dphm.core.geometry.meshing import (
    boundary_edge_count,
    largest_component,
    mesh_components,
    mesh_sdf,
)
from dphm.core.geometry.metrics import compare_meshes
from dphm.core.geometry.sampling import (
    sample_surface,
    triangle_areas,
    vertex_normals,
)

R = 0.05  # metres: a head-sized sphere for the metric tests


def sphere_sdf(radius, centre=(0.0, 0.0, 0.0)):
    return lambda p: np.linalg.norm(p - np.asarray(centre, np.float32), axis=1) - radius


def signed_volume(v, f):
    c = v[f].astype(np.float64)
    return np.einsum("ij,ij->i", c[:, 0], np.cross(c[:, 1], c[:, 2])).sum() / 6


@pytest.fixture(scope="module")
def sphere():
    return mesh_sdf(sphere_sdf(R), 96, bounds=((-0.06,) * 3, (0.06,) * 3))


# sampling


def test_sampling_is_area_uniform_and_on_the_mesh():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 0], [3, 2, 0], [6, 0, 0]], float)
    f = np.array([[0, 1, 2], [3, 5, 4]])  # areas 0.5 and 3
    assert np.allclose(triangle_areas(v, f), [0.5, 3.0])
    pts, nrm, tri, bary = sample_surface(v, f, 70_000, np.random.default_rng(1))
    share = np.bincount(tri, minlength=2) / len(tri)
    assert abs(share[1] - 3 / 3.5) < 0.01
    assert np.all(bary >= 0) and np.allclose(bary.sum(1), 1)
    assert np.allclose(np.einsum("nk,nkd->nd", bary, v[f[tri]]), pts)
    assert np.allclose(pts[:, 2], 0) and np.allclose(nrm, [0, 0, 1])
    left = pts[tri == 0]
    assert np.all(left[:, :2].sum(1) <= 1 + 1e-9)
    # uniform inside one triangle: the share in its lower half (y < 1/2) is 3/4
    assert abs((left[:, 1] < 0.5).mean() - 0.75) < 0.02


def test_sampling_seed_mask_and_smooth_normals(sphere):
    v, f = sphere
    a = sample_surface(v, f, 1000, 7)
    b = sample_surface(v, f, 1000, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0])
    mask = v[:, 2] > 0.6 * R
    pts, nrm, tri, _ = sample_surface(v, f, 5000, 0, vertex_mask=mask, smooth=True)
    assert mask[f[tri]].all()
    radial = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    assert np.allclose(np.linalg.norm(nrm, axis=1), 1)
    assert (nrm * radial).sum(1).min() > 0.999
    vn = vertex_normals(v, f)
    assert ((vn * v / np.linalg.norm(v, axis=1, keepdims=True)).sum(1)).min() > 0.999
    with pytest.raises(DPHMError):
        sample_surface(v, f, 10, 0, vertex_mask=np.zeros(len(v), bool))


# metrics


def test_metrics_of_a_mesh_against_itself(sphere):
    v, f = sphere
    m = compare_meshes(v, f, v, f)
    # two independent samples of one surface are ~spacing/2 apart: the metric's floor
    floor_mm = 0.5 * np.sqrt(4 * np.pi * R**2 / 100_000) * 1000
    assert m["cd_l1_mm_head"] < 1.1 * floor_mm
    assert m["nc_head"] > 0.99 and m["f1mm_head"] > 0.99 and m["f5mm_head"] == 1.0


def test_metrics_of_a_1mm_offset(sphere):
    v, f = sphere
    m = compare_meshes(v * (R + 0.001) / R, f, v, f)
    assert 0.98 < m["cd_l1_mm_head"] < 1.1
    assert m["f1mm_head"] < 0.1 and m["f5mm_head"] == 1.0 and m["nc_head"] > 0.99


def test_face_region_crops_the_prediction_by_proximity(sphere):
    gt_v, gt_f = sphere
    face = gt_v[:, 2] > 0.5 * R
    # another topology, the back pushed out by 3 mm, and a stray blob in front of the face
    v, f = mesh_sdf(sphere_sdf(R), 80, bounds=((-0.06,) * 3, (0.06,) * 3))
    v = np.where(v[:, 2:] < 0, v * (R + 0.003) / R, v)
    blob_v, blob_f = mesh_sdf(sphere_sdf(0.005), 16, bounds=((-0.006,) * 3, (0.006,) * 3))
    v = np.concatenate([v, blob_v + [0, 0, R + 0.02]])
    f = np.concatenate([f, blob_f + (len(v) - len(blob_v))])
    m = compare_meshes(v, f, gt_v, gt_f, gt_region_mask=face)
    assert m["cd_l1_mm_face"] < 0.25 and m["f5mm_face"] == 1.0 and m["nc_face"] > 0.99
    assert m["cd_l1_mm_head"] > 1.0 and m["f1mm_head"] < 0.7
    # without the cap, the blob would be charged to the face
    shifted = np.where(v[:, 2:] > 0, v * (R + 0.002) / R, v)
    assert compare_meshes(shifted, f, gt_v, gt_f, face)["cd_l1_mm_face"] > 1.5


# meshing


def test_mesh_sdf_sphere_accuracy_topology_and_query_count():
    stats = {}
    v, f = mesh_sdf(sphere_sdf(0.5), 128, stats=stats)
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert np.abs(np.linalg.norm(v, axis=1) / 0.5 - 1).max() < 0.005
    assert boundary_edge_count(f) == 0
    assert len(np.unique(mesh_components(f, len(v)))) == 1
    assert signed_volume(v, f) == pytest.approx(4 / 3 * np.pi * 0.5**3, rel=0.01)  # outward
    assert stats["queries"] < 0.1 * 129**3


def test_mesh_sdf_torch_callable_bounds_and_level():
    def ellipsoid(p):  # a torch function; not a true distance
        assert isinstance(p, torch.Tensor) and not torch.is_grad_enabled()
        centre, axes = torch.tensor([0.3, 0.0, 0.1]), torch.tensor([0.2, 0.3, 0.25])
        return ((p - centre) / axes).norm(dim=1) - 1

    v, f = mesh_sdf(ellipsoid, 64, bounds=((0, -0.5, -0.5), (1, 0.5, 0.5)), device="cpu")
    assert np.allclose(v.min(0), [0.1, -0.3, -0.15], atol=0.01)
    assert np.allclose(v.max(0), [0.5, 0.3, 0.35], atol=0.01)
    assert boundary_edge_count(f) == 0 and signed_volume(v, f) > 0
    v, f = mesh_sdf(ellipsoid, 64, bounds=((0, -0.5, -0.5), (1, 0.5, 0.5)), level=1.0, device="cpu")
    assert np.allclose(v.max(0), [0.7, 0.6 - 0.02, 0.6 - 0.02], atol=0.1)


def test_mesh_sdf_follows_the_surface_where_upsampling_misplaces_it():
    def skewed(p):  # overestimates outside 20x: trilinear upsampling puts the zero too far out
        d = sphere_sdf(0.5)(p)
        return np.where(d > 0, 20 * d, d)

    v, f = mesh_sdf(skewed, 128)
    assert boundary_edge_count(f) == 0
    assert len(np.unique(mesh_components(f, len(v)))) == 1


def test_mesh_sdf_without_surface_and_components():
    v, f = mesh_sdf(lambda p: np.ones(len(p), np.float32), 64)
    assert v.shape == (0, 3) and f.shape == (0, 3)

    def two(p):
        return np.minimum(sphere_sdf(0.3, (-0.5, 0, 0))(p), sphere_sdf(0.2, (0.5, 0, 0))(p))

    v, f = mesh_sdf(two, 64)
    assert len(np.unique(mesh_components(f, len(v)))) == 2
    big_v, big_f = largest_component(v, f)
    assert big_v[:, 0].max() < 0 and big_f.max() == len(big_v) - 1
    assert boundary_edge_count(big_f) == 0
    assert boundary_edge_count(big_f[1:]) == 3


# io


def test_ply_round_trip_is_exact(tmp_path, sphere):
    v, f = sphere
    n = vertex_normals(v, f).astype(np.float32)
    write_ply(tmp_path / "a.ply", v, f, n)
    v2, f2, n2 = read_ply(tmp_path / "a.ply")
    assert np.array_equal(v2, v) and np.array_equal(f2, f) and np.array_equal(n2, n)
    write_ply(tmp_path / "b.ply", v, f)
    assert read_ply(tmp_path / "b.ply")[2] is None
    data = (tmp_path / "b.ply").read_bytes()
    (tmp_path / "c.ply").write_bytes(data[:-5])
    with pytest.raises(DPHMError):
        read_ply(tmp_path / "c.ply")


@pytest.mark.parametrize("writer", [write_ply, write_obj])
def test_writers_are_atomic(tmp_path, monkeypatch, writer):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    f = np.array([[0, 1, 2]])
    path = tmp_path / "mesh.out"
    path.write_text("old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        writer(path, v, f)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["mesh.out"]
