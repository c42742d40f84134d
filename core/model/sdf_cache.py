"""A fixed identity's canonical SDF served from a cache: what tracking queries per frame.

Once a take's identity (and its refinement) is fitted, its canonical SDF never changes, yet
the network costs a top-k over the anchors and K local MLPs a query. ``CachedSDF`` holds it
on a hierarchy of sparse grids over [-1, 1]^3: a dense coarse level of ``STEPS[0]`` finest
voxels (16 mm) and finer levels down to ``VOXEL`` (2 mm) only near the surface, built
coarse to fine like the mesher (``geometry.meshing``): a level's cells are split where their
trilinearly upsampled values come within the next level's band of the surface, which for
the finest level holds |sdf| <= ``BAND`` (plus the half cell diagonal that keeps every such
point's cell complete). A query takes the finest level whose cell around it is complete.
Each grid vertex stores the value and its gradient (central differences on the level,
one-sided at the band's edge); a query returns the trilinear value, and its derivative is
the trilinear gradient (smooth across cells, as the fit's normal term needs, and
differentiable again for its backward pass).
"""

import numpy as np
import torch

from ..geometry.meshing import VertexGrid, refine_cells

VOXEL = 0.0125  # canonical units (2.5 mm): the finest level, on the refinement's grid
STEPS = (8, 4, 2, 1)  # levels in finest voxels, coarsest (dense) first
BAND = 0.005  # 1 mm: |sdf| the finest level serves, and twice per coarser level
SLACK = 0.5  # child diagonals added to a level's band: keeps those cells complete
BATCH = 16384  # queries per call of the function cached

_CORNERS = np.array([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)])
_D = torch.as_tensor(_CORNERS, dtype=torch.float32)


def _blend(f, corners):
    """Trilinear blend of corner rows (P, 8, C) at cell fractions f (P, 3): (P, C)."""
    w = (1 - _D + (2 * _D - 1) * f[:, None, :]).prod(2)
    return (w[..., None] * corners).sum(1)


class _Lookup(torch.autograd.Function):
    """Value from the corners' values, derivative from the corners' gradients."""

    @staticmethod
    def forward(ctx, x, corners, origin, inv):
        ctx.save_for_backward(x, corners, origin, inv)
        f = (x - origin) * inv
        curv = _blend(f, corners[..., 4:]) / inv**2  # second differences x cell size^2
        return _blend(f, corners[..., :1])[:, 0] - 0.5 * (f * (1 - f) * curv).sum(1)

    @staticmethod
    def backward(ctx, grad):
        x, corners, origin, inv = ctx.saved_tensors
        return grad[:, None] * _blend((x - origin) * inv, corners[..., 1:4]), None, None, None


class CachedSDF:
    """The cache: per grid vertex (value, gradient, second differences) in ``table``
    (V, 7); per cell record its 8 corner rows, first corner and inverse size; per finest
    cell of the grid the record of the finest complete cell holding it (``cell_record``).
    ``error_mm`` holds its measured error against the network."""

    def __init__(self, table, corners, origin, inv, cell_record, voxel=VOXEL):
        self.table, self.corners, self.origin, self.inv = table, corners, origin, inv
        self.cell_record, self.voxel = cell_record, voxel
        self.cells = int(round(2.0 / voxel))  # finest cells per axis
        self.error_mm: dict = {}

    @classmethod
    def build(cls, sdf_fn, voxel=VOXEL, band=BAND, steps=STEPS):
        """The cache of a numpy (N, 3) -> (N,) canonical SDF (``HeadModel.sdf_fn``)."""
        n = int(round(2.0 / voxel)) + 1
        assert (n - 1) % steps[0] == 0 and list(steps) == [steps[0] >> i for i in range(len(steps))]
        grid = VertexGrid(sdf_fn, np.full(3, -1.0), np.full(3, voxel), n, 0.0, BATCH, None)
        axis = np.arange(0, n, steps[0])
        lin = grid.linear(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1))
        grid.evaluate(lin.ravel())
        levels = [(steps[0], lin[:-1, :-1, :-1].ravel())]  # (step, first corners of cells)
        for child in steps[1:]:
            margin = band * child + SLACK * child * voxel * np.sqrt(3)
            levels.append((child, refine_cells(grid, levels[-1][1], child, 0.0, margin)[0]))
        cache = cls(*_assemble(grid, levels), voxel)
        cache.queries = grid.queries
        cache.error_mm = cache.measure(sdf_fn, band)
        return cache

    @property
    def vertices(self) -> int:
        return len(self.table)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """SDF (N,) at canonical points x (N, 3); outside [-1, 1]^3 the value at the nearest
        point of the box (far outside any head)."""
        m, x = self.cells, x.clamp(-1.0, 1.0)
        c = ((x.detach() + 1.0) / self.voxel).floor().long().clamp(0, m - 1)
        rec = self.cell_record[(c[:, 0] * m + c[:, 1]) * m + c[:, 2]]
        as_x = lambda t: t.to(x.dtype)  # noqa: E731
        return _Lookup.apply(x, as_x(self.table[self.corners[rec]]), as_x(self.origin[rec]),
                             as_x(self.inv[rec]))  # fmt: skip

    def measure(self, sdf_fn, band=BAND, n=4096, seed=0) -> dict:
        """Mean and 99th percentile of |cache - network| (mm) at points within ``band`` of
        the surface (random points of the finest cells near it)."""
        from ..data.corpus import CANONICAL_SCALE

        finest = self.inv[:, 0] * self.voxel > 0.999
        near = np.flatnonzero((finest & (self.table[self.corners, 0].abs().amin(1) < band)).numpy())
        if not len(near):
            return {}
        rng = np.random.default_rng(seed)
        pick = near[rng.integers(0, len(near), n)]
        x = self.origin.numpy()[pick] + rng.random((n, 3)).astype(np.float32) * self.voxel
        truth = np.asarray(sdf_fn(x), np.float32)
        with torch.no_grad():
            got = self(torch.as_tensor(x)).numpy()
        keep = np.abs(truth) < band
        err = np.abs(got - truth)[keep] * CANONICAL_SCALE * 1000
        return {"mean": float(err.mean()), "p99": float(np.quantile(err, 0.99))}


def _assemble(grid, levels):
    """The cache's tensors from the levels' cells, coarse to fine: finer cells overwrite
    the record of the finest cells they cover."""
    n, m = grid.n, grid.n - 1
    record, slot = np.zeros(m**3, np.int64), np.zeros(n**3, np.int64)
    tables, corners, origins, sizes, rows, records = [], [], [], [], 0, 0
    for step, cells in levels:
        at = cells[:, None] + grid.linear(_CORNERS * step)  # (C, 8) vertex ids
        mark = np.zeros(n**3, bool)
        mark[at] = True
        ids = np.flatnonzero(mark)
        slot[ids] = rows + np.arange(len(ids))
        tables.append(np.concatenate([grid.values[ids, None], _differences(grid, ids, step)], 1))
        corners.append(slot[at])
        first = grid.ijk(cells)
        origins.append(first * grid.h - 1.0)
        sizes.append(np.full(len(cells), step * grid.h[0]))
        inner = np.stack(np.meshgrid(*[np.arange(step)] * 3, indexing="ij"), -1).reshape(-1, 3)
        fine = first[:, None, :] + inner
        record[(fine[..., 0] * m + fine[..., 1]) * m + fine[..., 2]] = (
            records + np.arange(len(cells))[:, None]
        )
        rows, records = rows + len(ids), records + len(cells)
    f32 = lambda a: torch.as_tensor(np.concatenate(a), dtype=torch.float32)  # noqa: E731
    return (f32(tables), torch.as_tensor(np.concatenate(corners)), f32(origins),
            1.0 / f32(sizes)[:, None], torch.as_tensor(record))  # fmt: skip


def _differences(grid, ids, step):
    """(M, 6) first and second differences along x, y, z of the grid's values at vertices
    ``ids`` over ``step``: central, or one-sided (and no second) where a neighbour was never
    evaluated."""
    n, ijk, v = grid.n, grid.ijk(ids), grid.values
    out = np.zeros((len(ids), 6), np.float32)
    for a in range(3):
        off = step * n ** (2 - a)
        hi_ok = ijk[:, a] + step < n
        lo_ok = ijk[:, a] - step >= 0
        hi_ok[hi_ok] = grid.known[ids[hi_ok] + off]
        lo_ok[lo_ok] = grid.known[ids[lo_ok] - off]
        hi = np.where(hi_ok, v[np.where(hi_ok, ids + off, ids)], v[ids])
        lo = np.where(lo_ok, v[np.where(lo_ok, ids - off, ids)], v[ids])
        span = (hi_ok.astype(np.float32) + lo_ok) * step * grid.h[a]
        out[:, a] = np.where(span > 0, (hi - lo) / np.maximum(span, 1e-12), 0.0)
        both = hi_ok & lo_ok
        out[both, 3 + a] = (hi + lo - 2 * v[ids])[both] / (step * grid.h[a]) ** 2
    return out
