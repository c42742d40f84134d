"""The tri-plane family: bilinear plane reads, the 2D adversarial objective on volume-rendered
normal maps, and training that learns heads with it (under torchrun, as the others)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dphm.core.capture.simulate import ellipsoid
from dphm.core.data.ict import default_path
from dphm.core.geometry.meshing import boundary_edge_count, mesh_components, mesh_sdf
from dphm.core.model import checkpoint
from dphm.core.model.head import HeadModel, ModelConfig, load_head
from dphm.core.model.triplane import PLANES, TriplaneSDF
from dphm.core.train.adversarial import (
    Discriminator,
    discriminator_loss,
    generator_loss,
    mesh_normal_maps,
    random_views,
    render_normals,
)
from dphm.core.train.head import IdentityStage
from dphm.core.train.presets import HEAD_PRESETS, ID_LOSS, LOSS_SETS

ANCHORS = [[0.3, 0.1, 0.5], [-0.3, 0.1, 0.5], [0.0, 0.5, 0.4]]


def ellipsoid_sdf(radii):
    r = torch.tensor(radii)

    def sdf(x, shape=None):
        k0, k1 = (x / r).norm(dim=1), (x / r**2).norm(dim=1)
        return k0 * (k0 - 1) / k1

    return sdf


def test_planes_are_read_bilinearly_and_twice_differentiable():
    tri = TriplaneSDF(ANCHORS, d_id=8, channels=4, resolution=32, width=32, generated=16)
    cond = tri.condition(torch.randn(2, 8))
    x, s = torch.rand(300, 3) * 1.8 - 0.9, torch.randint(0, 2, (300,))
    assert cond["planes"].shape == (2, 3 * 16 * 16, 4)
    gen = cond["planes"].view(2, 3, 16, 16, 4).permute(0, 1, 4, 2, 3)
    base = tri.base.view(1, 3, 32, 32, 4).permute(0, 1, 4, 2, 3).expand(2, -1, -1, -1, -1)

    def read(planes, uv):  # grid_sample's bilinear read of each point's own shape
        return F.grid_sample(planes, uv.expand(2, -1, -1)[:, :, None],
                             align_corners=True)[s, :, torch.arange(300), 0]  # fmt: skip

    feats = tri.features(x, cond["planes"], s)
    for k, axes in enumerate(PLANES):  # the gathers agree with grid_sample's reads
        uv = x[None, :, list(axes)]
        want = read(gen[:, k], uv) + read(base[:, k], uv)
        torch.testing.assert_close(feats[:, 4 * k : 4 * k + 4], want)
    one = {k: v[:1].expand(300, *v.shape[1:]) for k, v in cond.items()}  # the tracker's frames
    torch.testing.assert_close(tri(x, one, torch.arange(300)), tri(x, cond, s * 0))
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(tri(x, cond, s).sum(), x, create_graph=True)
    ((g.norm(dim=1) - 1) ** 2).mean().backward()  # the eikonal term reaches the planes
    assert tri.base.grad.abs().sum() > 0
    assert tri.generator.seed.weight.grad.abs().sum() > 0


def test_volume_rendered_normals_match_the_rasterised_mesh():
    radii = [0.5, 0.6, 0.4]
    v, t = ellipsoid(np.zeros(3), np.array(radii), 48, 96)
    views = random_views(4, torch.Generator().manual_seed(0))
    fake = render_normals(ellipsoid_sdf(radii), views).detach().numpy()
    real = mesh_normal_maps(v, t, views.numpy())
    inside = np.linalg.norm(real, axis=1) > 0.99
    assert inside.mean() > 0.15  # a fifth of the map is face-on surface
    assert np.abs(fake - real).transpose(0, 2, 3, 1)[inside].mean() < 0.05
    covered = np.linalg.norm(fake, axis=1) > 0.5
    assert (covered == (np.linalg.norm(real, axis=1) > 0.5)).mean() > 0.97
    front = real[:, 2][inside]  # camera axes: the surfaces seen face the camera (+z)
    assert (front > 0).all()


def test_the_adversarial_loss_alone_moves_geometry_towards_the_real_maps():
    """A sphere's radius, trained only by the generator loss against a discriminator that
    sees normal maps of a larger sphere, grows to it (softplus losses, R1)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    r = torch.tensor(0.45, requires_grad=True)
    disc = Discriminator(16)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.99))
    g_opt = torch.optim.Adam([r], lr=5e-3, betas=(0.5, 0.99))
    for _ in range(120):
        views = random_views(8, gen)
        real = render_normals(lambda x, s: x.norm(dim=1) - 0.7, views, 16, 8).detach()
        fake = render_normals(lambda x, s: x.norm(dim=1) - r, views, 16, 8)
        disc.requires_grad_(True)
        for _ in range(2):
            d_opt.zero_grad()
            discriminator_loss(disc, fake, real, 1.0).backward()
            d_opt.step()
        disc.requires_grad_(False)
        g_opt.zero_grad()
        generator_loss(disc, fake).backward()
        g_opt.step()
    assert abs(r.item() - 0.7) < 0.02, r.item()


def fake_batch(b, n=64, n_grad=16):
    pts = torch.rand(b, n, 3) * 1.6 - 0.8
    return {
        "surf_pts": pts,
        "surf_nrm": F.normalize(pts, dim=-1),
        "sdf_pts": pts * 1.1,
        "sdf": pts.norm(dim=-1) * 1.1 - 0.6,
        "anchors": torch.tensor(ANCHORS).expand(b, -1, -1),
        "n_grad": n_grad,
        "views": random_views(2, torch.Generator().manual_seed(1)),
    }


@pytest.mark.parametrize("losses", list(LOSS_SETS))
def test_loss_sets_keep_only_their_terms(losses):
    small = {"family": "triplane", "plane_res": 16, "plane_channels": 4, "plane_generated": 16}
    cfg = ModelConfig(
        mirror=[1, 0, -1], mean_anchors=ANCHORS, anchor_vertices=[1, 2, 3], **small
    )
    stage = IdentityStage(HeadModel(cfg), 3, losses, HEAD_PRESETS["tiny"])
    loss, terms, fake = stage(torch.tensor([0, 1, 2]), fake_batch(3))
    kept = sum(ID_LOSS[k] * v for k, v in terms.items() if k in LOSS_SETS[losses])
    torch.testing.assert_close(loss, kept)
    assert (fake is not None) == ("adv" in LOSS_SETS[losses])
    if fake is not None:
        assert fake.shape == (2, 3, 16, 16) and fake.requires_grad


needs_ict = pytest.mark.skipif(default_path() is None, reason="ICT-FaceKit is absent")


@pytest.fixture(scope="module")
def tiny_triplane(tmp_path_factory):
    """A tiny tri-plane head trained by two torchrun processes (DDP + the discriminator's
    hand-averaged gradients)."""
    if default_path() is None:
        pytest.skip("ICT-FaceKit is absent")
    out = tmp_path_factory.mktemp("triplane") / "tri.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = ["-m", "dphm", "train", "model", "--preset", "tiny", "--family", "triplane"]
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         *cmd, "--out", str(out)],
        check=True, env=env,
    )  # fmt: skip
    return out


@needs_ict
def test_tiny_triplane_training_under_torchrun_learns_heads(tiny_triplane):
    content = checkpoint.load(tiny_triplane)
    assert content["config"]["family"] == "triplane" and content["training"]["processes"] == 2
    assert "adv" in content["training"]["final_losses"]["identity"]
    model, content = load_head(tiny_triplane)
    assert isinstance(model.identity, TriplaneSDF)
    data = torch.load(next((tiny_triplane.parent / "training").glob("head_data_tiny_*.pt")),
                      weights_only=False)  # fmt: skip
    books = content["codebooks"]
    err = [model.sdf_fn(z)(data["identity"]["surf_pts"][i]).abs().mean() for i, z in
           enumerate(books["id"])]  # fmt: skip
    assert 200 * float(np.mean(err)) < 2.0  # mm; an untrained model is off by centimetres
    v, f = mesh_sdf(model.sdf_fn(books["id"][0]), resolution=128)
    assert boundary_edge_count(f) == 0
    labels = mesh_components(f, len(v))
    sizes = np.bincount(labels[f[:, 0]])
    head = v[np.unique(f[labels[f[:, 0]] == sizes.argmax()])]
    extent = (head.max(0) - head.min(0)) * 0.2
    assert 0.2 < extent[0] < 0.35 and 0.25 < extent[1] < 0.4  # head-sized, in metres


@needs_ict
def test_the_tracker_and_the_bake_run_on_a_triplane_head(tiny_triplane, tmp_path):
    from dphm.core.capture import sequences
    from dphm.core.capture.simulate import KINECT_NFOV, HeadSimulator, head_motion
    from dphm.core.data.ict import load_ict
    from dphm.core.tracking import export
    from dphm.core.tracking.presets import PRESETS
    from dphm.core.tracking.take import read_take, write_take
    from dphm.core.tracking.tracker import Tracker, track

    sim = HeadSimulator(load_ict(), identity_seed=11, seed=3)
    R, t = head_motion(4, 30, sim.pivot, 3)
    w = sequences.sample(sequences.load("talking"), 4, 30)
    frames = [sim.frame(i, w[i], R[i], t[i]).frame for i in range(4)]
    model, content = load_head(tiny_triplane)
    tracker = Tracker(model, content, PRESETS["preview"].but(id_steps=20, keyframes=2))
    results, arrays = track(tracker, frames)
    assert all(r.found for r in results)
    assert np.nanmedian(arrays["fit_error_mm"]) < 4.0  # a 250-step model, a cached identity
    path = tmp_path / "take.npz"
    write_take(path, intrinsics=KINECT_NFOV.to_dict(), source="sim", **arrays)
    faces, posed = export.posed_meshes(model, read_take(path), resolution=32)
    posed = np.stack(list(posed))
    assert posed.shape[0] == 4 and len(faces) and np.isfinite(posed).all()


def test_the_family_setting_picks_the_default_head_and_its_companions(monkeypatch, tmp_path):
    from dphm.core.errors import DPHMError
    from dphm.core.paths import companion, head_checkpoint

    monkeypatch.setenv("DPHM_WEIGHTS", str(tmp_path))
    assert head_checkpoint() == tmp_path / "head_model.pt"
    assert companion(head_checkpoint(), "prior.pt") == tmp_path / "prior.pt"
    monkeypatch.setenv("DPHM_FAMILY", "triplane")
    assert companion(head_checkpoint(), "encoder.pt") == tmp_path / "encoder_triplane.pt"
    with pytest.raises(DPHMError, match=r"head_model_triplane\.pt: checkpoint not found"):
        load_head()
    monkeypatch.setenv("DPHM_FAMILY", "voxels")
    with pytest.raises(DPHMError, match="DPHM_FAMILY='voxels': not a head model family"):
        load_head()
