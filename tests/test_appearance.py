"""Appearance: the Gaussian rasteriser, the splatting .ply, and a take's Gaussian head fitted
to a simulated colour capture through the command line, as a user runs it."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from dphm.core.appearance.gaussians import (
    GaussianHead,
    export_ply,
    quaternion_matrix,
    triangle_frames,
)
from dphm.core.appearance.splat import project, rasterize, sh_colour
from dphm.core.data.ict import default_path

needs_ict = pytest.mark.skipif(default_path() is None, reason="ICT-FaceKit is absent")


def random_gaussians(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.stack([torch.rand(n, generator=g) * 0.4 - 0.2,
                         torch.rand(n, generator=g) * 0.3 - 0.15,
                         torch.rand(n, generator=g) * 0.5 + 0.5], 1)  # fmt: skip
    a = torch.randn(n, 3, 3, generator=g) * 0.01
    covs = a @ a.transpose(1, 2) + torch.eye(3) * 1e-5
    return means, covs, torch.rand(n, 3, generator=g), torch.rand(n, generator=g) * 0.9


def test_rasteriser_matches_front_to_back_compositing_of_every_gaussian():
    means, covs, cols, op = random_gaussians()
    cam = (100.0, 100.0, 35.0, 25.0)
    img, alpha = rasterize(means, covs, cols, op, *cam, 70, 50)
    uv, conic, _ = project(means, covs, *cam)
    order = torch.argsort(means[:, 2])
    ys, xs = torch.meshgrid(torch.arange(50) + 0.5, torch.arange(70) + 0.5, indexing="ij")
    d = torch.stack([xs, ys], -1).view(-1, 1, 2) - uv[order][None]
    c = conic[order]
    power = -0.5 * (c[:, 0] * d[..., 0] ** 2 + c[:, 2] * d[..., 1] ** 2)
    power = power - c[:, 1] * d[..., 0] * d[..., 1]
    a = (op[order] * torch.exp(power.clamp(max=0))).clamp(max=0.99)
    a = torch.where(a >= 1 / 255, a, torch.zeros_like(a))
    trans = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a[:, :-1]], 1), 1)
    torch.testing.assert_close(img.reshape(-1, 3), (a * trans) @ cols[order], atol=1e-3, rtol=0)
    torch.testing.assert_close(alpha.reshape(-1), (a * trans).sum(1), atol=1e-3, rtol=0)
    assert alpha.max() > 0.9  # something is opaque


def test_gradients_move_a_gaussian_onto_its_target():
    means, covs, cols, op = random_gaussians(1)
    target, _ = rasterize(means + torch.tensor([0.03, -0.02, 0.0]), covs, cols, op,
                          100.0, 100.0, 35.0, 25.0, 70, 50)  # fmt: skip
    shift = torch.zeros(1, 3, requires_grad=True)
    opt = torch.optim.Adam([shift], lr=2e-3)
    for _ in range(150):
        img, _ = rasterize(means + shift, covs, cols, op, 100.0, 100.0, 35.0, 25.0, 70, 50)
        opt.zero_grad()
        (img - target).abs().mean().backward()
        opt.step()
    np.testing.assert_allclose(shift.detach()[0, :2].numpy(), [0.03, -0.02], atol=0.004)


def test_splat_ply_holds_the_placed_gaussians_and_rotated_colour(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 3))
    f = np.array([[i, i + 1, i + 2] for i in range(0, 27, 3)])
    head = GaussianHead(f, np.arange(9), np.full((9, 3), 1 / 3, np.float32), rng.random((9, 3)),
                        0.01)  # fmt: skip
    with torch.no_grad():
        head.sh.normal_()
        head.quat.normal_()
    export_ply(head, v, tmp_path / "g.ply")
    raw = (tmp_path / "g.ply").read_bytes()
    header, _, body = raw.partition(b"end_header\n")
    names = [line.split()[-1].decode() for line in header.splitlines() if line.startswith(b"prop")]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1",
                          "rot_2", "rot_3"] and len(names) == 26  # fmt: skip
    data = np.frombuffer(body, "<f4").reshape(9, 26)
    vt = torch.as_tensor(v, dtype=torch.float32)
    means, covs, frames = head.place(vt)
    np.testing.assert_allclose(data[:, :3], means.detach().numpy(), atol=1e-6)
    # the file's rotation and scales give the same covariance
    rot = quaternion_matrix(torch.from_numpy(data[:, 22:26].copy()))
    cov = rot @ torch.diag_embed(torch.exp(2 * torch.from_numpy(data[:, 19:22].copy())))
    torch.testing.assert_close(cov @ rot.transpose(1, 2), covs.detach(), atol=1e-6, rtol=1e-4)
    # its world-frame SH give the colour the triangle-frame SH give, from any direction
    sh = np.concatenate([data[:, 6:9, None], data[:, 9:18].reshape(9, 3, 3)], 2)
    sh = torch.from_numpy(sh.transpose(0, 2, 1).copy())
    d = torch.nn.functional.normalize(torch.randn(9, 3), dim=1)
    local = torch.einsum("nji,nj->ni", triangle_frames(vt, head.faces)[head.tri], d)
    torch.testing.assert_close(sh_colour(sh, d), sh_colour(head.sh.detach(), local))


def dphm(*args, check=True):
    return subprocess.run([sys.executable, "-m", "dphm", *map(str, args)], capture_output=True,
                          text=True, check=check)  # fmt: skip


@pytest.fixture(scope="module")
def colour_take(tmp_path_factory):
    if default_path() is None:
        pytest.skip("ICT-FaceKit is absent")
    tmp = tmp_path_factory.mktemp("appearance")
    dphm("simulate", "--out", tmp / "cap", "--frames", 10, "--color", "--sequence", "talking")
    dphm("track", tmp / "cap", "--out", tmp / "take.npz", "--quality", "preview")
    return tmp


@needs_ict
def test_appearance_of_a_simulated_colour_take(colour_take):
    out = colour_take / "out"
    r = dphm("appearance", colour_take / "take.npz", "--capture", colour_take / "cap", "--out",
             out, "--gaussians", 3000, "--iterations", 120, "--per-frame")  # fmt: skip
    assert "held-out PSNR" in r.stdout
    scores = json.loads((out / "scores.json").read_text())
    assert scores["gaussians"]["psnr"] > 24 and scores["gaussians"]["ssim"] > 0.8
    assert scores["gaussians"]["psnr"] > scores["texture"]["psnr"] - 1.0
    held = sorted(p.name for p in (out / "renders").iterdir())
    assert held == ["frame_00004.png", "frame_00009.png"]  # every fifth frame, never fitted
    assert len(list((out / "frames").glob("frame_*.ply"))) == 10
    data = np.load(out / "appearance.npz")
    assert data["vertex_colours"].shape == (len(data["vertices"]), 3)
    assert 0.1 < data["vertex_colours"].mean() < 0.9  # skin, not black or white
    header = (out / "gaussians.ply").read_bytes().partition(b"end_header")[0]
    assert b"element vertex 3000" in header


@needs_ict
def test_appearance_bad_input_is_one_line(colour_take, tmp_path):
    depth_only = tmp_path / "cap"
    dphm("simulate", "--out", depth_only, "--frames", 3)
    r = dphm("appearance", colour_take / "take.npz", "--capture", depth_only, "--out",
             tmp_path / "o", check=False)  # fmt: skip
    assert r.returncode == 2 and "no colour frames" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = dphm("appearance", tmp_path / "missing.npz", "--capture", colour_take / "cap", "--out",
             tmp_path / "o", check=False)  # fmt: skip
    assert r.returncode == 2 and "missing.npz" in r.stderr
