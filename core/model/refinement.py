"""Per-take refinement of the identity: a narrow-band correction grid on the canonical SDF.

The latent code spans only what the model learned; a performer's nose, chin or ears may lie
outside it. The refined canonical SDF is

    sdf'(x) = sdf_id(x; z_id) + g(x),

g trilinear on a sparse grid of ``VOXEL`` canonical units (2.5 mm) over [-1, 1]^3. Its
vertices are free only within ``BAND`` voxels of where the take's points landed in
canonical space (each tracked frame's points through its pose and the backward
deformation); everywhere else g is 0: the model's SDF is kept where nothing was observed.
g solves a sparse regularised least squares,

    min_g  sum_i w_i (r_i + g(x_i))^2 + lam_smooth |D g|^2 + lam_zero |g|^2,

r_i = sdf_id(x_i) the model's residual at the canonical point, D the differences between
neighbouring vertices (with the vertices outside the band fixed at 0: the correction fades
to the model's SDF across the band, and stays smooth, which keeps the gradient of sdf'
close to unit length), w_i Huber weights re-estimated over ``IRLS`` rounds (hair, hands and
flying pixels stop pulling) normalised by the points per observed cell, so a cell seen by
many frames weighs no more than one seen by a few. Residuals above ``TRUNC`` never enter;
g is clipped to ``LIMIT``. Expressions keep coming from the model's deformation on top:
posed points map to canonical space first, then sdf'.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..data.corpus import CANONICAL_SCALE

VOXEL = 0.0125  # canonical units (2.5 mm)
ORIGIN = -1.0
SIZE = int(round(2.0 / VOXEL)) + 1  # grid vertices per axis
BAND = 6  # voxels around the observed cells whose vertices are free
TRUNC = 0.05  # 10 mm: residuals beyond are not the head
LIMIT = 0.05  # 10 mm: the largest correction
HUBER = 0.0075  # 1.5 mm
IRLS = 3
LAM_SMOOTH, LAM_ZERO = 0.3, 1e-3


@dataclass
class Refinement:
    """A correction grid: ``index`` (M,) linear vertex ids (x slowest) of a SIZE^3 grid,
    ``values`` (M,) canonical units."""

    index: np.ndarray
    values: np.ndarray
    voxel: float = VOXEL
    size: int = SIZE

    def __post_init__(self):
        self._volume = None

    def arrays(self) -> dict:
        """The take file's arrays (``tracking.take``)."""
        return {
            "refine_index": np.asarray(self.index, np.int32),
            "refine_values": np.asarray(self.values, np.float16),
            "refine_grid": np.array([self.voxel, self.size], np.float64),
        }

    @classmethod
    def from_arrays(cls, data: dict):
        voxel, size = data["refine_grid"]
        return cls(
            np.asarray(data["refine_index"], np.int64),
            np.asarray(data["refine_values"], np.float32),
            float(voxel),
            int(size),
        )

    def volume(self, device=None) -> torch.Tensor:
        """The dense grid, flat (SIZE^3,)."""
        if self._volume is None or self._volume.device != torch.device(device or "cpu"):
            v = torch.zeros(self.size**3, device=device)
            v[torch.as_tensor(self.index, device=device)] = torch.as_tensor(
                self.values, dtype=torch.float32, device=device
            )
            self._volume = v
        return self._volume

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """g at canonical points x (N, 3), trilinear (differentiable in x to any order, as the
        fit's normal term needs); 0 outside the grid."""
        n, vol = self.size, self.volume(x.device)
        u = (x - ORIGIN) / self.voxel
        base = u.detach().floor().clamp(0, n - 2)
        f = u - base
        inside = ((u >= 0) & (u <= n - 1)).all(1)
        b = base.long()
        out = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for corner in range(8):
            d = [(corner >> k) & 1 for k in range(3)]
            w = torch.ones_like(out)
            for k in range(3):
                w = w * (f[:, k] if d[k] else 1 - f[:, k])
            idx = ((b[:, 0] + d[0]) * n + b[:, 1] + d[1]) * n + b[:, 2] + d[2]
            out = out + w * vol[idx]
        return torch.where(inside, out, torch.zeros_like(out))

    @property
    def largest_mm(self) -> float:
        return float(np.abs(self.values).max(initial=0.0)) * CANONICAL_SCALE * 1000.0


def _trilinear(points, size):
    """(vertex ids (N, 8), weights (N, 8)) of each point's cell corners."""
    u = (points - ORIGIN) / VOXEL
    base = np.clip(np.floor(u).astype(np.int64), 0, size - 2)
    f = u - base
    ids, ws = [], []
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                c = base + (dx, dy, dz)
                ids.append((c[:, 0] * size + c[:, 1]) * size + c[:, 2])
                w = np.where(dx, f[:, 0], 1 - f[:, 0]) * np.where(dy, f[:, 1], 1 - f[:, 1])
                ws.append(w * np.where(dz, f[:, 2], 1 - f[:, 2]))
    return np.stack(ids, 1), np.stack(ws, 1)


def fit_refinement(points: np.ndarray, residuals: np.ndarray, smooth=LAM_SMOOTH) -> Refinement:
    """The correction grid for canonical points (N, 3) whose model SDF is ``residuals``."""
    from scipy import ndimage, sparse
    from scipy.sparse.linalg import cg

    keep = np.isfinite(residuals) & (np.abs(residuals) < TRUNC)
    keep &= np.all(np.abs(points) < 1.0 - VOXEL, axis=1)
    p, r = points[keep].astype(np.float64), residuals[keep].astype(np.float64)
    if len(p) == 0:
        return Refinement(np.zeros(0, np.int64), np.zeros(0, np.float32))
    n = SIZE
    ids, ws = _trilinear(p, n)
    occupied = np.zeros(n**3, bool)
    occupied[ids.ravel()] = True
    free = ndimage.binary_dilation(
        occupied.reshape(n, n, n), ndimage.generate_binary_structure(3, 2), iterations=BAND
    ).ravel()
    verts = np.flatnonzero(free)
    col = np.full(n**3, -1, np.int64)
    col[verts] = np.arange(len(verts))
    m = len(verts)
    A = sparse.csr_matrix(
        (ws.ravel(), (np.repeat(np.arange(len(p)), 8), col[ids.ravel()])), shape=(len(p), m)
    )
    density = len(p) / max(1, len(np.unique(ids[:, 0])))  # points per observed cell
    rows, cols, vals, e = [], [], [], 0
    coords = np.stack(np.unravel_index(verts, (n, n, n)), 1)
    for axis in range(3):
        for step in (1, -1):
            nb = coords.copy()
            nb[:, axis] += step
            inside = (nb[:, axis] >= 0) & (nb[:, axis] < n)
            j = np.full(m, -1)
            j[inside] = col[np.ravel_multi_index(nb[inside].T, (n, n, n))]
            both = (j >= 0) & (step == 1)  # each free pair once
            edge = j < 0  # a neighbour held at 0
            k = np.flatnonzero(both | edge)
            rows += [e + np.arange(len(k)), e + np.flatnonzero(both[k])]
            cols += [k, j[k][both[k]]]
            vals += [np.ones(len(k)), -np.ones(int(both[k].sum()))]
            e += len(k)
    D = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(e, m)
    )
    reg = smooth * (D.T @ D) + LAM_ZERO * sparse.identity(m)
    g = np.zeros(m)
    for _ in range(IRLS):
        res = r + A @ g
        w = np.minimum(1.0, HUBER / np.maximum(np.abs(res), 1e-12)) / density
        H = (A.T @ sparse.diags(w) @ A + reg).tocsr()
        b = -(A.T @ (w * r))
        pre = sparse.diags(1.0 / H.diagonal())
        g, _ = cg(H, b, x0=g, M=pre, rtol=1e-6, maxiter=400)
    g = np.clip(g, -LIMIT, LIMIT)
    return Refinement(verts, g.astype(np.float32), VOXEL, SIZE)
