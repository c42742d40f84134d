"""The closed head surface the model learns, built from an ICT-FaceKit mesh.

ICT's skin (face, head and neck) is open at the neck, the mouth and the eyes. We close it
so that inside/outside is defined everywhere: every boundary loop is capped by a fan of
triangles to one extra vertex. The neck cap is flat (the loop centroid); the eye and mouth
caps are cones whose tip sits ``CAVITY_DEPTH`` behind the opening (into the head), so an
open mouth shows a cavity and the eyeballs, which are closed meshes, stay visible in the
eye openings. The learned surface is the boundary of (closed skin) U (eyeballs): samples
of either part that fall inside the other are dropped. Signs come from the outward normal
of the nearest surface samples (a vote of ``SIGN_VOTES``) near the surface, and from the
generalised winding number farther out, where nearest normals mislead in concave regions
(under the chin); tests check the signs against exact winding numbers.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from .ict import EYEBALLS, HEAD_NECK, NARROW_FACE, ICTFaceKit

CAVITY_DEPTH = {"eye": 0.012, "mouth": 0.015, "neck": 0.0}
SIGN_VOTES = 5
FAR = 0.02  # metres: beyond this, signs come from the winding number
WINDING_STRIDE = 10
REGION_FACE, REGION_SKIN, REGION_CAP, REGION_EYE = 0, 1, 2, 3


@dataclass
class HeadTopology:
    """Triangles of the closed head for one ICT topology (vertex count N + one per cap)."""

    triangles: np.ndarray  # (T, 3) into [N vertices, cap tips]
    region: np.ndarray  # (T,) REGION_*
    cap_loops: list[np.ndarray]  # vertex ids of each boundary loop
    cap_kinds: list[str]


@lru_cache(maxsize=4)
def _topology(n: int, tris_bytes: bytes) -> HeadTopology:
    tris = np.frombuffer(tris_bytes, np.int64).reshape(-1, 3)
    skin = tris[(tris < HEAD_NECK[1]).all(1)]
    eyes = tris[(tris >= EYEBALLS[0]).all(1) & (tris < EYEBALLS[1]).all(1)]
    edges = np.concatenate([skin[:, [0, 1]], skin[:, [1, 2]], skin[:, [2, 0]]])
    key_fwd = edges[:, 0] * n + edges[:, 1]
    key_rev = edges[:, 1] * n + edges[:, 0]
    boundary = edges[~np.isin(key_fwd, key_rev)]
    # group boundary edges into loops by connected components of their vertices
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = coo_matrix((np.ones(len(boundary)), (boundary[:, 0], boundary[:, 1])), shape=(n, n))
    _, labels = connected_components(a, directed=False)
    cap_tris, loops, kinds = [], [], []
    for lab in np.unique(labels[boundary[:, 0]]):
        loop_edges = boundary[labels[boundary[:, 0]] == lab]
        verts = np.unique(loop_edges)
        kinds.append(_loop_kind(verts))
        tip = n + len(loops)
        loops.append(verts)
        cap_tris.append(
            np.column_stack([loop_edges[:, 1], loop_edges[:, 0], np.full(len(loop_edges), tip)])
        )
    cap = np.concatenate(cap_tris)
    region = np.concatenate(
        [
            np.where((skin < NARROW_FACE[1]).all(1), REGION_FACE, REGION_SKIN),
            np.full(len(cap), REGION_CAP),
            np.full(len(eyes), REGION_EYE),
        ]
    )
    return HeadTopology(np.concatenate([skin, cap, eyes]), region, loops, kinds)


def _loop_kind(verts: np.ndarray) -> str:
    if verts.min() >= HEAD_NECK[0]:
        return "neck"
    return "mouth" if verts.max() - verts.min() > 60 or verts.min() >= 6632 else "eye"


def topology(ict: ICTFaceKit) -> HeadTopology:
    tris = np.ascontiguousarray(ict.triangles, np.int64)
    return _topology(ict.n_vertices, tris.tobytes())


def closed_vertices(topo: HeadTopology, vertices: np.ndarray) -> np.ndarray:
    """Vertices plus one cap tip per boundary loop (ICT frame: z out of the face)."""
    tips = []
    for loop, kind in zip(topo.cap_loops, topo.cap_kinds, strict=True):
        c = vertices[loop].mean(0)
        c[2] -= CAVITY_DEPTH[kind]
        tips.append(c)
    return np.concatenate([vertices, np.asarray(tips, vertices.dtype)])


def triangle_normals(v: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals and areas of triangles."""
    n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    area2 = np.linalg.norm(n, axis=1)
    return n / np.maximum(area2, 1e-20)[:, None], 0.5 * area2


def sample_triangles(v, t, n, rng, weights=None):
    """Area-weighted samples: triangle ids (n,), barycentrics (n, 3), points (n, 3)."""
    _, area = triangle_normals(v, t)
    p = area if weights is None else area * weights
    tri = rng.choice(len(t), size=n, p=p / p.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.column_stack([1 - s, s * (1 - r2), s * r2]).astype(np.float32)
    pts = np.einsum("nk,nkd->nd", bary, v[t[tri]])
    return tri, bary, pts.astype(np.float32)


def inside(query: np.ndarray, points: np.ndarray, normals: np.ndarray, tree=None) -> np.ndarray:
    """Inside test against an oriented point set by a vote of the nearest normals."""
    tree = tree or cKDTree(points)
    _, idx = tree.query(query, k=SIGN_VOTES, workers=-1)
    side = np.einsum("nkd,nkd->nk", query[:, None] - points[idx], normals[idx])
    return (side < 0).sum(1) > SIGN_VOTES // 2


@dataclass
class SurfaceSamples:
    points: np.ndarray  # (n, 3)
    normals: np.ndarray  # (n, 3) outward
    tri: np.ndarray  # (n,) into HeadTopology.triangles
    bary: np.ndarray  # (n, 3)
    region: np.ndarray  # (n,)
    area: np.ndarray  # (n,) surface area each sample stands for (m^2)


def sample_surface(
    topo: HeadTopology, vertices: np.ndarray, n: int, rng, region_weights=(4.0, 1.0, 0.5, 2.0)
) -> SurfaceSamples:
    """Samples of the union surface, denser on the face (``region_weights`` per REGION_*)."""
    v = closed_vertices(topo, vertices)
    t = topo.triangles
    weights = np.asarray(region_weights, np.float64)[topo.region]
    n_draw = int(n * 1.15) + 64
    tri, bary, pts = sample_triangles(v, t, n_draw, rng, weights)
    nrm, _ = triangle_normals(v, t)
    nrm = nrm[tri]
    is_eye = topo.region[tri] == REGION_EYE
    keep = np.ones(len(pts), bool)
    for part in (is_eye, ~is_eye):  # drop samples of one part that lie inside the other
        other = ~part
        if part.any() and other.any():
            keep[part] &= ~inside(pts[part], pts[other], nrm[other])
    sel = np.flatnonzero(keep)[:n]
    _, tri_area = triangle_normals(v, t)
    area = (tri_area * weights).sum() / n_draw / weights[tri[sel]]
    return SurfaceSamples(
        pts[sel], nrm[sel].astype(np.float32), tri[sel], bary[sel], topo.region[tri[sel]], area
    )


def winding_number(query: np.ndarray, dense: SurfaceSamples, chunk=256) -> np.ndarray:
    """Generalised winding number from oriented samples (dipole sum, Barill et al. 2018);
    accurate away from the surface, where the normal vote is not."""
    w = np.empty(len(query), np.float32)
    an = dense.normals * dense.area[:, None]
    for i in range(0, len(query), chunk):
        d = dense.points[None] - query[i : i + chunk, None]
        r3 = np.maximum(np.linalg.norm(d, axis=-1), 1e-6) ** 3
        w[i : i + chunk] = (np.einsum("qnd,nd->qn", d, an) / r3).sum(1)
    return w / (4 * np.pi)


def signed_distance(query: np.ndarray, dense: SurfaceSamples, tree=None) -> np.ndarray:
    """Approximate SDF from dense oriented samples of a closed surface.

    Distance: to the nearest sample, point-to-plane within 2 mm of the surface. Sign: a vote of
    the nearest normals within ``FAR`` of the surface, the winding number farther out."""
    tree = tree or cKDTree(dense.points)
    dist, idx = tree.query(query, k=SIGN_VOTES, workers=-1)
    diff = query[:, None] - dense.points[idx]
    side = np.einsum("nkd,nkd->nk", diff, dense.normals[idx])
    inside_ = (side < 0).sum(1) > SIGN_VOTES // 2
    far = dist[:, 0] > FAR
    if far.any():
        sub = SurfaceSamples(*(a[::WINDING_STRIDE] for a in vars(dense).values()))
        sub.area = sub.area * WINDING_STRIDE
        inside_[far] = winding_number(query[far], sub) > 0.5
    d = np.where(dist[:, 0] < 0.002, np.abs(side[:, 0]), dist[:, 0])
    return np.where(inside_, -d, d).astype(np.float32)
