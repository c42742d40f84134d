"""Diffusion priors: schedule, v-prediction, sampling a known density, the regulariser,
checkpoints, and ``dphm sample``. No ICT data needed: the head model here is untrained."""

import math

import numpy as np
import pytest
import torch
from dphm.core.cli import main
from dphm.core.data import corpus
from dphm.core.errors import DPHMError
from dphm.core.geometry.io import read_ply
from dphm.core.geometry.meshing import boundary_edge_count, mesh_components, mesh_sdf
from dphm.core.model import checkpoint
from dphm.core.model.head import HeadModel, ModelConfig, load_head
from dphm.core.prior.diffusion import GaussianDiffusion, cosine_alphas_cumprod
from dphm.core.prior.latent import load_prior
from dphm.core.prior.regularizer import PriorRegularizer
from dphm.core.prior.sample import decode
from dphm.core.prior.train import fit_prior, train_prior
from dphm.core.train.presets import PriorPreset

MEAN = torch.tensor([1.0, -2.0])
CHOL = torch.tensor([[1.0, 0.0], [0.8, 0.5]])
COV = CHOL @ CHOL.T


@pytest.fixture(scope="module")
def gaussian_prior():
    """A prior trained on 4096 draws of a correlated 2-D Gaussian."""
    torch.manual_seed(0)
    data = MEAN + torch.randn(4096, 2, generator=torch.Generator().manual_seed(0)) @ CHOL.T
    preset = PriorPreset(width=64, depth=2, dropout=0.0, id_steps=0, exp_steps=0, batch=256)
    return fit_prior(data, preset, steps=1000, quiet=True)[0]


@pytest.fixture(scope="module")
def head_and_prior(tmp_path_factory):
    """An untrained head model (a sphere-like SDF) with random codebooks, and its tiny prior."""
    d = tmp_path_factory.mktemp("prior")
    anchors = [[0.3, 0.1, 0.5], [-0.3, 0.1, 0.5], [0.0, 0.5, 0.4], [0.0, -0.2, 0.7]]
    cfg = ModelConfig(mirror=[1, 0, -1, -1], mean_anchors=anchors, anchor_vertices=[1, 2, 3, 4])
    g = torch.Generator().manual_seed(0)
    books = {"id": 0.1 * torch.randn(12, 64, generator=g), "exp": torch.randn(20, 64, generator=g)}
    content = {
        "config": cfg.to_dict(),
        "state_dict": HeadModel(cfg).state_dict(),
        "codebooks": books,
    }
    checkpoint.save(d / "head.pt", "head_model", content)
    train_prior("tiny", d / "head.pt", d / "prior.pt", quiet=True)
    return d / "head.pt", d / "prior.pt"


def test_cosine_schedule():
    ac = cosine_alphas_cumprod(1000)
    assert len(ac) == 1000 and (ac[1:] < ac[:-1]).all() and ac[0] > 0.9999 and ac[-1] < 1e-4
    s = 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 250, 500, 900):
        assert ac[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    betas = 1 - ac / torch.cat([torch.ones(1, dtype=ac.dtype), ac[:-1]])
    assert (betas > 0).all() and (betas <= 0.999 + 1e-12).all()


def test_v_prediction_identities():
    diff = GaussianDiffusion(1000)
    x0, eps = torch.randn(64, 8), torch.randn(64, 8)
    t = torch.randint(0, 1000, (64,))
    xt = diff.q_sample(x0, t, eps)
    v = diff.v_target(x0, t, eps)
    torch.testing.assert_close(diff.x0_from_v(xt, t, v), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(diff.eps_from_v(xt, t, v), eps, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("sampler", "n"), [("ddim", 4000), ("ddpm", 1000)])
def test_samples_match_the_gaussian(gaussian_prior, sampler, n):
    x = gaussian_prior.sample(n, sampler, 50, torch.Generator().manual_seed(1))
    assert torch.allclose(x.mean(0), MEAN, atol=0.1), x.mean(0)
    assert torch.allclose(torch.cov(x.T), COV, atol=0.15, rtol=0.15), torch.cov(x.T)


def test_ddim_is_deterministic_given_the_seed(gaussian_prior):
    a, b, c = (
        gaussian_prior.sample(16, "ddim", 5, torch.Generator().manual_seed(s)) for s in (7, 7, 8)
    )
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("mode", ["dphm", "sds"])
def test_regulariser_pulls_codes_back_toward_the_density(gaussian_prior, mode):
    reg = PriorRegularizer({"id": gaussian_prior}, w_exp=0.0, mode=mode, samples=8)
    precision = torch.linalg.inv(COV)

    def mahalanobis2(z):
        return (((z - MEAN) @ precision) * (z - MEAN)).sum(-1)

    z = (MEAN + torch.tensor([[3.0, 0.0], [0.0, 2.0], [-2.0, 2.0]])).requires_grad_(True)
    before = mahalanobis2(z).detach()
    opt = torch.optim.Adam([z], lr=0.05)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        loss, parts = reg.loss(z_id=z, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(parts) == {"id"}
    assert (mahalanobis2(z).detach() < 0.25 * before).all(), (before, mahalanobis2(z))
    assert not any(p.requires_grad for p in gaussian_prior.parameters())


def test_checkpoint_round_trip_and_mismatch(head_and_prior, tmp_path):
    head, path = head_and_prior
    sha = checkpoint.peek(head)["sha256"]
    priors, content = load_prior(path, sha)
    assert content["head_sha256"] == sha and content["training"]["preset"] == "tiny"
    books = checkpoint.load(head)["codebooks"]
    for s in ("id", "exp"):
        torch.testing.assert_close(priors[s].mean, books[s].mean(0))
        z = priors[s].sample(8, "ddim", 10, torch.Generator().manual_seed(0))
        assert z.shape == (8, 64) and torch.isfinite(z).all()
    with pytest.raises(DPHMError, match="retrain"):
        load_prior(path, "0" * 64)
    with pytest.raises(DPHMError, match="expected 'prior'"):
        load_prior(head)
    with pytest.raises(DPHMError, match="not found"):
        load_prior(tmp_path / "none.pt")


def test_sample_command_writes_the_grid(head_and_prior, tmp_path):
    head, prior = head_and_prior
    args = ["sample", "--identities", "2", "--expressions", "3", "--seed", "5"]
    args += ["--head", str(head), "--prior", str(prior), "--resolution", "32", "--steps", "10"]
    assert main([*args, "--out", str(tmp_path / "a"), "--format", "ply"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    expected = [f"id0{i}_{e}.ply" for i in range(2) for e in ("exp00", "exp01", "exp02", "neutral")]
    assert names == sorted([*expected, "codes.npz"])
    v, f, _ = read_ply(tmp_path / "a" / "id01_exp02.ply")
    assert len(f) > 100 and np.abs(v).max() < 0.5  # metres, head-sized
    codes = np.load(tmp_path / "a" / "codes.npz")
    assert codes["z_id"].shape == (2, 64) and codes["z_exp"].shape == (3, 64)
    assert main([*args, "--out", str(tmp_path / "b"), "--format", "npz", "--expressions", "0"]) == 0
    again = np.load(tmp_path / "b" / "codes.npz")
    np.testing.assert_array_equal(again["z_id"], codes["z_id"])  # same seed, same identities
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "codes.npz",
        "id00_neutral.npz",
        "id01_neutral.npz",
    ]
    assert main([*args, "--out", str(tmp_path / "c"), "--identities", "0"]) == 2


def test_mesher_caps_a_surface_that_leaves_the_bounds():
    def low_sphere(p):  # its bottom lies below the bounds, as a long neck's does
        return np.linalg.norm(p - np.array([0.0, -0.8, 0.0]), axis=1) - 0.5

    v, f = mesh_sdf(low_sphere, 64, coarse=16, band=0.5)
    assert boundary_edge_count(f) == 0 and len(np.unique(mesh_components(f, len(v)))) == 1
    assert v[:, 1].min() > -1.0 and v[:, 1].min() < -0.97
    inside = v[:, 1] > -0.9  # away from the cap, still the sphere
    assert np.abs(np.linalg.norm(v[inside] - [0, -0.8, 0], axis=1) - 0.5).max() < 0.01


def test_decode_settings_give_the_default_mesh_with_fewer_queries(head_and_prior):
    model, content = load_head(head_and_prior[0])
    fn = model.sdf_fn(content["codebooks"]["id"][0], content["codebooks"]["exp"][0])
    slow, fast = {}, {}
    v0, f0 = mesh_sdf(fn, 64, stats=slow)
    v1, f1 = mesh_sdf(fn, 64, coarse=16, band=0.5, stats=fast)
    assert len(f0) > 1000 and boundary_edge_count(f0) == 0
    np.testing.assert_array_equal(np.unique(v0, axis=0), np.unique(v1, axis=0))
    assert fast["queries"] < 0.8 * slow["queries"], (fast, slow)
    v, f = decode(model, content["codebooks"]["id"][0], content["codebooks"]["exp"][0], 64)
    np.testing.assert_allclose(v, corpus.from_canonical(v1))


def test_identity_denoiser_size_from_the_preset():
    p = PriorPreset(width=64, depth=2, dropout=0.0, id_steps=2, exp_steps=2, batch=8, id_width=32)
    assert (p.for_space("id").width, p.for_space("id").depth) == (32, 2)
    assert p.for_space("exp") == p
    prior = fit_prior(torch.randn(16, 4), p.for_space("id"), steps=2, quiet=True)[0]
    assert prior.cfg.width == 32 and prior.net.proj_in.out_features == 32
