"""The cached canonical SDF: accuracy against the function it caches, its derivatives, and
the tracker serving frames from it."""

import numpy as np
import pytest
import torch
from dphm.core.model.sdf_cache import VOXEL, CachedSDF
from test_tracking import needs_head, needs_ict, sim_frames  # noqa: F401

MM = 1 / 200  # canonical units per millimetre


def bumpy(x):
    """A sphere of radius 0.5 (100 mm) with a 3 mm ripple: curvature like a head's."""
    x = np.asarray(x, np.float64)
    r = np.linalg.norm(x, axis=1)
    return (r - 0.5 - 0.015 * np.sin(8 * x[:, 0]) * np.cos(6 * x[:, 1])).astype(np.float32)


def near(n, spread, seed=0):
    p = np.random.default_rng(seed).standard_normal((n, 3))
    p = 0.5 * p / np.linalg.norm(p, axis=1, keepdims=True)
    return (p + np.random.default_rng(seed + 1).normal(0, spread, p.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def cache():
    return CachedSDF.build(bumpy)


def test_cache_matches_the_function_near_the_surface_and_keeps_signs_far(cache):
    x = near(20_000, 1 * MM)
    with torch.no_grad():
        got = cache(torch.as_tensor(x)).numpy()
    err = np.abs(got - bumpy(x)) / MM
    assert err.mean() < 0.02 and err.max() < 0.1  # mm, on a smooth function
    assert cache.error_mm["mean"] < 0.05  # what it measures of itself
    far = np.concatenate([near(500, 0) * 1.7, near(500, 0) * 0.3, np.full((1, 3), 3.0)])
    with torch.no_grad():
        assert np.array_equal(cache(torch.as_tensor(far)).numpy() > 0, bumpy(far) > 0)
    # narrow band: a small share of the finest grid's vertices is stored
    assert cache.vertices < 0.1 * (2 / VOXEL + 1) ** 3


def test_cache_gradient_is_the_surface_normal_and_differentiates_again(cache):
    x = torch.as_tensor(near(2000, 0.5 * MM), dtype=torch.float32).requires_grad_(True)
    f = cache(x)
    (g,) = torch.autograd.grad(f.sum(), x, create_graph=True)
    eps = 1e-4
    xn = x.detach().numpy().astype(np.float64)
    fd = np.stack([(bumpy(xn + eps * e) - bumpy(xn - eps * e)) / (2 * eps) for e in np.eye(3)], 1)
    cos = np.sum(g.detach().numpy() * fd, 1) / np.linalg.norm(fd, axis=1)
    cos /= np.linalg.norm(g.detach().numpy(), axis=1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 2.0
    # the fit's normal term backpropagates through the gradient: a Hessian-vector product
    # that matches differences of the gradient
    v = torch.randn_like(x)
    (hv,) = torch.autograd.grad((g * v).sum(), x)
    x2 = (x.detach() + 1e-3 * v).requires_grad_(True)
    (g2,) = torch.autograd.grad(cache(x2).sum(), x2)
    fd_hv = (g2 - g.detach()) / 1e-3
    assert torch.isfinite(hv).all() and hv.abs().sum() > 0
    assert torch.nn.functional.cosine_similarity(hv.flatten(), fd_hv.flatten(), dim=0) > 0.8


@needs_ict
@needs_head
def test_tracker_serves_frames_from_the_cache_and_agrees_with_the_network(sim_frames):  # noqa: F811
    from dphm.core.model.head import load_head
    from dphm.core.tracking.presets import PRESETS
    from dphm.core.tracking.tracker import Tracker, track

    model, content = load_head()
    errors, poses = {}, {}
    for cached in (True, False):
        preset = PRESETS["preview"].but(id_steps=30, keyframes=2, cache=cached)
        tracker = Tracker(model, content, preset, encoder=None)
        results, arrays = track(tracker, [f.frame for f in sim_frames])
        assert (tracker.cache is not None) == cached
        assert (tracker.timings["cache"] > 0) == cached
        errors[cached], poses[cached] = arrays["fit_error_mm"], arrays["t"]
    assert tracker.cache is None
    # a frame may stop a step (0.6 mm of translation at preview) earlier or later
    assert np.median(np.abs(errors[True] - errors[False])) < 0.05  # mm
    assert np.median(np.abs(poses[True] - poses[False])) < 3e-4  # m
    assert np.abs(poses[True] - poses[False]).max() < 2e-3


@needs_head
def test_frame_meshes_from_the_cache_match_the_network():
    """The Alembic path meshes every frame on the cached identity: its surfaces lie where
    the network's do, with the same extent."""
    from dphm.core.geometry.meshing import largest_component, mesh_sdf
    from dphm.core.model.head import load_head
    from dphm.core.tracking.bake import frame_meshes

    model, content = load_head()
    books = content["codebooks"]
    take = {"z_id": books["id"][1].numpy(), "z_exp": books["exp"][[0, 3]].numpy()}
    for z, (v, _) in zip(take["z_exp"], frame_meshes(model, take, resolution=96), strict=True):
        net = model.sdf_fn(take["z_id"], z)
        off = np.abs(net(v).numpy()) / MM  # the network's distance of the cached surface, mm
        assert np.median(off) < 0.1 and np.quantile(off, 0.99) < 0.5
        nv, _ = largest_component(*mesh_sdf(net, resolution=96))
        assert np.allclose(np.ptp(v, 0), np.ptp(nv, 0), atol=3 * MM)
