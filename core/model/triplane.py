"""Tri-plane identity SDF (the design of "Learning Neural Parametric Head Models with 2D
Adversarial Objectives").

An identity code generates three axis-aligned feature planes (xy, xz, zy) of C channels
each: a small convolutional generator adds its output to learned base planes shared by
every identity. A query point reads each plane bilinearly at its projection, and a small
MLP decodes the three features and the point into a correction of a sphere's SDF:

    sdf(x) = mlp([F_xy(x, y), F_xz(x, z), F_zy(z, y), x]) + |x| - r.

Bilinear reads are gathers, so the second derivatives that the eikonal and normal terms
and the volume-rendered normal maps of training need flow through them. Anchor positions,
which the tracker reads as landmarks and the deformation is conditioned on, come from the
code by a linear map as in the local-MLP family, so both families share one interface:
``condition(z_id) -> dict with "anchors"`` and ``forward(x, cond, shape_index) -> sdf``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

PLANES = ((0, 1), (0, 2), (2, 1))  # coordinates read by the xy, xz and zy planes


def smooth(x):
    """Softplus with a sharp knee: a ReLU whose normals do not facet (rendered normal maps)."""
    return F.softplus(x, beta=100.0)


class PlaneGenerator(nn.Module):
    """Code (B, D) -> planes (B, 3, C, R, R): a linear seed at 8^2, upsampled by convolutions."""

    def __init__(self, d_id, channels, resolution, width):
        super().__init__()
        n_up = int(round(math.log2(resolution / 8)))
        if 8 * 2**n_up != resolution:
            raise ValueError(f"plane resolution {resolution} is not 8 times a power of two")
        self.width, self.channels, self.resolution = width, channels, resolution
        self.seed = nn.Linear(d_id, width * 64)
        layers, c = [], width
        for i in range(n_up):
            last = i == n_up - 1
            out = 3 * channels if last else max(c // 2, 32)
            up = nn.Upsample(scale_factor=2, mode="bilinear")
            layers += [up, nn.Conv2d(c, out, 3, padding=1)]
            if not last:
                layers.append(nn.LeakyReLU(0.2))
            c = out
        self.net = nn.Sequential(*layers)
        nn.init.normal_(self.net[-1].weight, 0.0, 1e-3)
        nn.init.zeros_(self.net[-1].bias)
        self.base = nn.Parameter(torch.randn(3 * channels, resolution, resolution) * 1e-2)

    def forward(self, z):
        h = self.seed(z).view(len(z), self.width, 8, 8)
        r = self.resolution
        return (self.base + self.net(h)).view(len(z), 3, self.channels, r, r)


class TriplaneSDF(nn.Module):
    def __init__(
        self, mean_anchors, d_id=64, channels=16, resolution=128, width=128, hidden=64, radius=0.6
    ):
        super().__init__()
        self.register_buffer("mean_anchors", torch.as_tensor(mean_anchors, dtype=torch.float32))
        a = len(self.mean_anchors)
        self.radius, self.resolution = radius, resolution
        self.to_anchor = nn.Linear(d_id, a * 3)
        nn.init.zeros_(self.to_anchor.weight)
        nn.init.zeros_(self.to_anchor.bias)
        self.generator = PlaneGenerator(d_id, channels, resolution, width)
        self.decoder = nn.ModuleList(
            [nn.Linear(3 * channels + 3, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)]
        )
        nn.init.normal_(self.decoder[-1].weight, 0.0, 1e-3)
        nn.init.zeros_(self.decoder[-1].bias)

    def anchors(self, z_id):
        """(B, A, 3) anchor positions for identity codes (B, D)."""
        return self.mean_anchors + self.to_anchor(z_id).view(len(z_id), -1, 3)

    def condition(self, z_id):
        planes = self.generator(z_id)  # (B, 3, C, R, R) -> rows (B * 3 * R * R, C)
        flat = planes.permute(0, 1, 3, 4, 2).reshape(-1, planes.shape[2])
        return {"anchors": self.anchors(z_id), "planes": flat}

    def features(self, x, flat, s):
        """(M, 3C) bilinear plane features at points x (M, 3) of shapes s (M,)."""
        r = self.resolution
        uv = torch.stack([x[:, list(p)] for p in PLANES])  # (3, M, 2)
        p = (uv.clamp(-1.0, 1.0) + 1.0) * (0.5 * (r - 1))
        i0 = p.detach().floor().clamp_(0, r - 2)
        f = p - i0
        i0 = i0.long()
        plane = torch.arange(3, device=x.device)[:, None]
        row = ((s[None] * 3 + plane) * r + i0[..., 1]) * r + i0[..., 0]  # (3, M)
        row = row.reshape(-1)
        fx, fy = f[..., :1].reshape(-1, 1), f[..., 1:].reshape(-1, 1)
        v00, v01 = flat.index_select(0, row), flat.index_select(0, row + 1)
        v10, v11 = flat.index_select(0, row + r), flat.index_select(0, row + r + 1)
        feat = (v00 + (v01 - v00) * fx) * (1 - fy) + (v10 + (v11 - v10) * fx) * fy
        m = len(x)
        return feat.view(3, m, -1).permute(1, 0, 2).reshape(m, -1)

    def forward(self, x, cond, shape_index=None):
        """SDF (M,) at points x (M, 3); shape_index (M,) picks each point's identity."""
        s = (
            torch.zeros(len(x), dtype=torch.long, device=x.device)
            if shape_index is None
            else shape_index
        )
        h = torch.cat([self.features(x, cond["planes"], s), x], 1)
        for lin in self.decoder[:-1]:
            h = smooth(lin(h))
        return self.decoder[-1](h).squeeze(-1) + x.norm(dim=1) - self.radius
