"""The per-take identity refinement, the take format that stores it, and heads outside ICT."""

import numpy as np
import pytest
import torch
from dphm.core.cli import main
from dphm.core.errors import DPHMError
from dphm.core.model.refinement import SIZE, VOXEL, Refinement, fit_refinement
from dphm.core.npz import load_npz, save_npz
from dphm.core.tracking.take import read_take, refinement, write_take
from test_tracking import HEAD, fake_take, needs_head, needs_ict


def sphere(n, r, seed=0):
    p = np.random.default_rng(seed).standard_normal((n, 3))
    return r * p / np.linalg.norm(p, axis=1, keepdims=True)


def test_refinement_moves_the_surface_to_the_points_and_keeps_the_rest():
    """Points on a sphere of radius 0.5 where the model says 0.52: the correction takes the
    zero level to them, is 0 far from them, and leaves the side nothing saw alone."""
    pts = sphere(40_000, 0.5)
    pts = pts[pts[:, 2] > 0]  # only the front was observed
    ref = fit_refinement(pts, np.linalg.norm(pts, axis=1) - 0.52)
    at = lambda x: ref(torch.as_tensor(x, dtype=torch.float32)).numpy()  # noqa: E731
    front = sphere(2000, 0.5, 1)
    front = front[front[:, 2] > 0.2]
    refined = np.linalg.norm(front, axis=1) - 0.52 + at(front)
    assert np.median(np.abs(refined)) < 0.002  # 0.4 mm, from 4 mm
    back = sphere(2000, 0.52, 2)
    assert np.abs(at(back[back[:, 2] < -0.3])).max() == 0.0  # unobserved: the model's SDF
    assert np.abs(at(sphere(500, 0.8))).max() == 0.0  # beyond the band
    # smooth: neighbouring values differ little (the SDF stays close to a distance)
    grad = (at(front * 1.01) - at(front)) / (0.01 * 0.5)
    assert np.abs(grad).max() < 0.5
    assert ref.largest_mm < 10.0 + 1e-6


def test_refinement_ignores_outliers():
    pts = sphere(30_000, 0.5)
    res = np.zeros(len(pts))
    res[::50] = 0.04  # 8 mm: hair, a hand, flying pixels
    ref = fit_refinement(pts, res)
    assert np.median(np.abs(ref(torch.as_tensor(pts, dtype=torch.float32)).numpy())) < 3e-4


def test_take_v2_round_trip_reads_v1_and_refuses_damaged_refinement(tmp_path):
    ref = Refinement(np.array([5, SIZE**2 + 7, SIZE**3 - 1]), np.array([0.01, -0.02, 0.0]))
    path = write_take(tmp_path / "t.npz", **fake_take(), refinement=ref)
    take = read_take(path)
    assert take["format"] == "dphm-take/2"
    back = refinement(take)
    assert np.array_equal(back.index, ref.index) and back.voxel == VOXEL
    assert np.allclose(back.values, ref.values, atol=1e-4)
    plain = read_take(write_take(tmp_path / "p.npz", **fake_take()))
    assert refinement(plain) is None
    data = load_npz(path, "take")
    save_npz(tmp_path / "v1.npz", {**data, "format": np.array("dphm-take/1")})
    assert read_take(tmp_path / "v1.npz")["format"] == "dphm-take/1"
    save_npz(tmp_path / "bad.npz", {**data, "refine_index": np.array([0, 1, SIZE**3])})
    with pytest.raises(DPHMError, match="bad.npz: take refinement arrays are damaged"):
        read_take(tmp_path / "bad.npz")


@needs_ict
def test_pushed_heads_leave_the_linear_span():
    from dphm.core.data.ict import load_ict
    from dphm.core.data.ood_heads import PUSHED, pushed

    ict = load_ict()
    base = ict.head(np.random.default_rng(0).standard_normal(100).astype(np.float32))
    basis = ict.identity_deltas.reshape(100, -1).T.astype(np.float64)
    for kind in PUSHED:
        d = (pushed(ict, base, kind, 1) - base).astype(np.float64)
        assert 0.004 < np.linalg.norm(d, axis=1).max() < 0.008, kind
        coef, *_ = np.linalg.lstsq(basis, d.ravel(), rcond=None)
        rest = np.linalg.norm((d.ravel() - basis @ coef).reshape(-1, 3), axis=1)
        assert rest.max() > 0.002, kind  # 100 identity modes cannot make it
    with pytest.raises(DPHMError, match="unknown head change"):
        pushed(ict, base, "horns")


@needs_ict
def test_head_mesh_units_placement_winding_and_simulation(tmp_path):
    from dphm.core.data.ict import HEAD_NECK, load_ict
    from dphm.core.data.obj import write_obj
    from dphm.core.data.ood_heads import read_head_mesh

    ict = load_ict()
    v = ict.neutral[: HEAD_NECK[1]]
    tris = ict.skin_triangles[(ict.skin_triangles < HEAD_NECK[1]).all(1)]
    # millimetres, 2 cm off, wound inward
    write_obj(tmp_path / "head.obj", (v + (0.01, -0.02, 0.015)) * 1000, tris[:, ::-1])
    placed, t, face = read_head_mesh(tmp_path / "head.obj", ict)
    assert np.median(np.linalg.norm(placed - v, axis=1)) < 0.002
    assert np.array_equal(t, tris)  # outward again
    assert face.sum() > 1000 and not face[ict.face_vertex_mask[: HEAD_NECK[1]] == 0].all()
    write_obj(tmp_path / "big.obj", v * 4, tris)
    with pytest.raises(DPHMError, match="big.obj: a head 1.3.* units across"):
        read_head_mesh(tmp_path / "big.obj", ict)
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--frames", "3", "--head-mesh",
                 str(tmp_path / "head.obj")]) == 0  # fmt: skip
    from dphm.core.capture.folder import CaptureFolder
    from dphm.core.data.obj import read_obj

    frames = list(CaptureFolder(out))
    assert len(frames) == 3 and (frames[0].depth > 0).sum() > 5000
    gv, gf = read_obj(out / "ground_truth" / "000000.obj")
    assert len(gv) == len(v) and len(gf) == len(tris)
    assert main(["simulate", "--out", str(tmp_path / "c"), "--frames", "2", "--color",
                 "--head-mesh", str(tmp_path / "head.obj")]) == 2  # fmt: skip


@needs_ict
@needs_head
def test_tracking_refines_a_head_outside_the_span_and_everything_meshes_it(tmp_path):
    from dphm.core.capture.simulate import HeadSimulator, head_motion
    from dphm.core.data.ict import load_ict
    from dphm.core.data.ood_heads import pushed
    from dphm.core.model.head import load_head
    from dphm.core.tracking import export
    from dphm.core.tracking.bake import bake_take, rest_mesh
    from dphm.core.tracking.presets import PRESETS
    from dphm.core.tracking.tracker import Tracker, track
    from dphm.core.transfer.heads import codebook_identity, transfer_take

    torch.set_num_threads(1)
    model, content = load_head(HEAD)
    ict = load_ict()
    sim = HeadSimulator(ict, identity_seed=5, seed=2)
    sim.base = pushed(ict, sim.base, "nose")
    R, t = head_motion(8, 30, sim.pivot, 2)
    frames = [sim.frame(i, np.zeros(52), R[i], t[i]).frame for i in range(8)]
    preset = PRESETS["preview"].but(id_steps=30, keyframes=2, refine_identity=True)
    tracker = Tracker(model, content, preset, face=None)
    _, arrays = track(tracker, frames)
    ref = arrays["refinement"]
    assert ref is not None and ref.largest_mm > 1.0 and tracker.timings["identity_refine"] > 0
    # the refined canonical SDF fits the take's points better than the code alone
    obs = tracker.observe(frames[3])
    x = (obs.points - arrays["t"][3]) @ arrays["R"][3] / 0.2
    x = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        cond = model.condition(torch.as_tensor(arrays["z_id"])[None], arrays["z_exp"][3][None])
        y = x + model.deform(x, cond)
        latent = model.identity(y, cond["id"]).abs().median()
        refined = (model.identity(y, cond["id"]) + ref(y)).abs().median()
    assert refined < 0.7 * latent
    path = write_take(tmp_path / "t.npz", intrinsics={}, source="sim", **arrays)
    take = read_take(path)
    bake = bake_take(model, content, take, resolution=48, arkit_shapes=False)
    plain, _ = rest_mesh(model, take["z_id"], 48)
    assert len(bake["rest"]) != len(plain) or np.abs(bake["rest"] - plain).max() > 1e-3
    faces, meshes = export.posed_meshes(model, take, resolution=48)
    assert len(next(meshes)) == len(bake["rest"])  # export meshes the same refined head
    other = codebook_identity(content, 0)
    worn = transfer_take(model, content, take, other, resolution=48, arkit_shapes=False)
    assert np.allclose(worn["rest"], rest_mesh(model, other, 48)[0])  # not the performer's
    tracker = Tracker(model, content, preset.but(refine_identity=False), face=None)
    assert track(tracker, frames)[1]["refinement"] is None
