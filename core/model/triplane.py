"""Tri-plane identity SDF (the design of "Learning Neural Parametric Head Models with 2D
Adversarial Objectives").

An identity code generates three axis-aligned feature planes (xy, xz, zy) of C channels
at G per side with a small convolutional generator; learned base planes at R >= G hold the
detail every head shares. A query point reads both bilinearly at its projections (their
sum is the feature), and a small MLP decodes the three features and the point into a
correction of a sphere's SDF:

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
    """Code (B, D) -> planes (B, 3, C, G, G): a linear seed at 8^2, upsampled (nearest) and
    convolved to G per side."""

    def __init__(self, d_id, channels, generated, width):
        super().__init__()
        n_up = int(round(math.log2(generated / 8)))
        if 8 * 2**n_up != generated:
            raise ValueError(f"generated planes {generated}: not 8 times a power of two")
        self.width, self.channels = width, channels
        self.seed = nn.Linear(d_id, width * 64)
        layers, c = [], width
        for i in range(n_up):
            last = i == n_up - 1
            out = 3 * channels if last else max(c // 2, 32)
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c, out, 3, padding=1)]
            if not last:
                layers.append(nn.LeakyReLU(0.2))
            c = out
        self.net = nn.Sequential(*layers)
        nn.init.normal_(self.net[-1].weight, 0.0, 1e-3)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z):
        h = self.net(self.seed(z).view(len(z), self.width, 8, 8))
        return h.view(len(z), 3, self.channels, *h.shape[-2:])


def _bilinear(rows, uv, s, r):
    """(3, M, C) bilinear reads of planes stored as rows (B * 3 * r * r, C) at uv (3, M, 2)
    in [-1, 1] of shapes s (M,)."""
    p = (uv.clamp(-1.0, 1.0) + 1.0) * (0.5 * (r - 1))
    i0 = p.detach().floor().clamp_(0, r - 2)
    f = p - i0
    i0 = i0.long()
    plane = torch.arange(3, device=uv.device)[:, None]
    row = (((s[None] * 3 + plane) * r + i0[..., 1]) * r + i0[..., 0]).reshape(-1)
    fx, fy = f[..., :1].reshape(-1, 1), f[..., 1:].reshape(-1, 1)
    v00, v01 = rows.index_select(0, row), rows.index_select(0, row + 1)
    v10, v11 = rows.index_select(0, row + r), rows.index_select(0, row + r + 1)
    out = (v00 + (v01 - v00) * fx) * (1 - fy) + (v10 + (v11 - v10) * fx) * fy
    return out.view(3, len(s), -1)


class TriplaneSDF(nn.Module):
    def __init__(
        self, mean_anchors, d_id=64, channels=16, resolution=128, width=128, hidden=64,
        generated=64, radius=0.6,
    ):  # fmt: skip
        super().__init__()
        self.register_buffer("mean_anchors", torch.as_tensor(mean_anchors, dtype=torch.float32))
        a = len(self.mean_anchors)
        self.radius, self.resolution, self.generated = radius, resolution, generated
        self.to_anchor = nn.Linear(d_id, a * 3)
        nn.init.zeros_(self.to_anchor.weight)
        nn.init.zeros_(self.to_anchor.bias)
        self.generator = PlaneGenerator(d_id, channels, generated, width)
        self.base = nn.Parameter(torch.randn(3 * resolution**2, channels) * 1e-2)  # as rows
        self.decoder = nn.ModuleList(
            [nn.Linear(3 * channels + 3, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 1)]
        )
        nn.init.normal_(self.decoder[-1].weight, 0.0, 1e-3)
        nn.init.zeros_(self.decoder[-1].bias)

    def anchors(self, z_id):
        """(B, A, 3) anchor positions for identity codes (B, D)."""
        return self.mean_anchors + self.to_anchor(z_id).view(len(z_id), -1, 3)

    def condition(self, z_id):
        planes = self.generator(z_id)  # (B, 3, C, G, G) -> (B, 3 * G * G, C)
        rows = planes.permute(0, 1, 3, 4, 2).reshape(len(z_id), -1, planes.shape[2])
        return {"anchors": self.anchors(z_id), "planes": rows}

    def features(self, x, planes, s):
        """(M, 3C) plane features at points x (M, 3) of shapes s (M,): the shared base planes
        at R plus the identity's at G, each read bilinearly; ``planes`` (B, 3 G^2, C) may be
        one identity expanded to B shapes (the tracker's frames)."""
        if planes.stride(0) == 0:
            planes, s = planes[:1], torch.zeros_like(s)
        uv = torch.stack([x[:, list(p)] for p in PLANES])  # (3, M, 2)
        feat = _bilinear(self.base, uv, torch.zeros_like(s), self.resolution)
        feat = feat + _bilinear(planes.reshape(-1, planes.shape[-1]), uv, s, self.generated)
        return feat.permute(1, 0, 2).reshape(len(x), -1)

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
