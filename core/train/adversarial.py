"""The 2D adversarial objective on normal maps (tri-plane family, identity phase).

Normal maps of the model are volume rendered from its SDF: orthographic rays from random
views of the face find the surface by sphere tracing (no gradient), then ``samples`` points
in a band around it are composited with VolSDF's density sigma = Psi_beta(-sdf) / beta,

    alpha_i = 1 - exp(-sigma_i delta),  T_i = prod_{j<i} (1 - alpha_j),
    N(r) = sum_i T_i alpha_i n_i,  n_i = grad sdf / |grad sdf| in camera axes,

so gradients reach the SDF through its normals (second derivatives) and its opacity. Real
normal maps of the training meshes are rasterised from the same view distribution and
supersampled twice. A small convolutional discriminator compares them with the softplus
(non-saturating) GAN losses and an R1 penalty on the real maps.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..capture.frame import Intrinsics
from ..capture.raster import face_normals, rasterize

EXTENT = 0.95  # half-width of the maps, canonical units (a head spans about +-0.85)
YAW, PITCH = math.radians(60), math.radians(25)
FAR = 1000.0  # a pinhole camera this far away is orthographic to 1e-3


def random_views(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotations canonical -> camera axes (x right, y up, z towards the camera)."""
    yaw = (torch.rand(n, generator=gen) * 2 - 1) * YAW
    pitch = (torch.rand(n, generator=gen) * 2 - 1) * PITCH
    cy, sy, cp, sp = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin()
    one, zero = torch.ones(n), torch.zeros(n)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(n, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], 1).view(n, 3, 3)
    return rx @ ry


def _pixels(res: int) -> torch.Tensor:
    """(res * res, 2) pixel centres in camera x, y (row 0 at the top)."""
    c = (torch.arange(res) + 0.5) / res * 2 * EXTENT - EXTENT
    yy, xx = torch.meshgrid(-c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


def render_normals(
    sdf, views: torch.Tensor, res: int = 32, samples: int = 12, band: float = 0.04,
    beta: float = 0.005, trace_steps: int = 12,
) -> torch.Tensor:  # fmt: skip
    """(B, 3, res, res) normal maps in camera axes of shape b seen from ``views[b]``.

    ``sdf(x, shape_index)`` evaluates the model; gradients flow to its parameters."""
    b = len(views)
    pix = _pixels(res)
    n_ray = len(pix)
    cam_o = torch.cat([pix, torch.full((n_ray, 1), 1.5)], 1)
    o = torch.einsum("bji,rj->bri", views, cam_o).reshape(-1, 3)  # R^T applied to each
    d = (-views[:, 2, :]).repeat_interleave(n_ray, 0)
    shape = torch.arange(b).repeat_interleave(n_ray)
    with torch.no_grad():
        t = torch.full((len(o),), 0.5)
        best_t, best_f = t.clone(), torch.full_like(t, math.inf)
        for _ in range(trace_steps):
            f = sdf(o + t[:, None] * d, shape)
            closer = f.abs() < best_f
            best_t = torch.where(closer, t, best_t)
            best_f = torch.where(closer, f.abs(), best_f)
            t = t + f.clamp(-0.05, 0.2)
    offsets = torch.linspace(-band, band, samples)
    delta = 2 * band / (samples - 1)
    ts = best_t[:, None] + offsets[None] + (torch.rand(len(o), 1) - 0.5) * delta
    x = (o[:, None] + ts[..., None] * d[:, None]).reshape(-1, 3).requires_grad_(True)
    f = sdf(x, shape.repeat_interleave(samples))
    (g,) = torch.autograd.grad(f.sum(), x, create_graph=True)
    n = F.normalize(g, dim=1).view(-1, samples, 3)
    y = -f.view(-1, samples) / beta
    psi = torch.where(y <= 0, 0.5 * torch.exp(y.clamp(max=0)), 1 - 0.5 * torch.exp(-y.clamp(min=0)))
    alpha = 1 - torch.exp(-psi / beta * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
    world = ((trans * alpha)[..., None] * n).sum(1).view(b, n_ray, 3)
    cam = torch.einsum("bij,brj->bri", views, world)
    return cam.permute(0, 2, 1).reshape(b, 3, res, res)


def mesh_normal_maps(vertices, triangles, views: np.ndarray, res: int = 32) -> np.ndarray:
    """(V, 3, res, res) normal maps of a mesh (canonical units) by the renderer's cameras,
    rasterised at twice the resolution and averaged down."""
    hi = 2 * res
    f = hi / (2 * EXTENT) * FAR
    intr = Intrinsics(fx=f, fy=f, cx=hi / 2, cy=hi / 2, width=hi, height=hi)
    tri = np.asarray(triangles)
    out = np.zeros((len(views), 3, res, res), np.float32)
    for i, r in enumerate(np.asarray(views, np.float64)):
        p = np.asarray(vertices, np.float64) @ r.T
        cv = np.stack([p[:, 0], -p[:, 1], FAR - p[:, 2]], 1)
        ras = rasterize(cv, tri, intr)
        hit = ras.tri_id >= 0
        n = face_normals(p, tri)[ras.tri_id[hit]]
        n *= np.where(n[:, 2:] < 0, -1.0, 1.0)  # the side that faces the camera
        img = np.zeros((hi, hi, 3))
        img[hit] = n
        out[i] = img.reshape(res, 2, res, 2, 3).mean((1, 3)).transpose(2, 0, 1)
    return out


class Discriminator(nn.Module):
    """Normal map (B, 3, R, R) -> logit (B,): strided convolutions to 4x4, then linear."""

    def __init__(self, res: int = 32, width: int = 32):
        super().__init__()
        layers, c, r = [], 3, res
        while r > 4:
            layers += [nn.Conv2d(c, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c, r, width = width, r // 2, min(2 * width, 128)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 16, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def generator_loss(disc, fake):
    return F.softplus(-disc(fake)).mean()


def discriminator_loss(disc, fake, real, r1: float):
    """Softplus GAN loss, plus gamma/2 E|grad D(real)|^2 when ``r1`` > 0."""
    loss = F.softplus(disc(fake.detach())).mean()
    if r1 > 0:
        real = real.detach().requires_grad_(True)
        logit = disc(real)
        (g,) = torch.autograd.grad(logit.sum(), real, create_graph=True)
        return loss + F.softplus(-logit).mean() + r1 / 2 * g.pow(2).sum((1, 2, 3)).mean()
    return loss + F.softplus(-disc(real)).mean()
