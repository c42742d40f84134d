"""Training samples for the head model, in canonical units.

Identity (neutral heads): surface points with normals; near-surface points offset along the
normal by N(0, sigma) for two sigmas, and uniform space points in [-1, 1]^3, both with
signed distances to the closed head surface (``surface.py``); anchor vertex positions.
Expression (posed heads): surface and near-surface points of the posed head, each with the
corresponding canonical point of the same identity's neutral head (same triangle and
barycentrics, same offset along the normal): dense correspondences for the deformation.
"""

import numpy as np

from .corpus import CANONICAL_CENTER, CANONICAL_SCALE, to_canonical
from .surface import closed_vertices, sample_surface, signed_distance, triangle_normals

NEAR_SIGMAS_M = (0.002, 0.01)
EXP_NEAR_SIGMA_M = 0.004


def identity_samples(
    ict, topo, id_w, anchor_vertices, rng, n_surf=16384, n_near=16384, n_space=4096, n_dense=100_000
) -> dict:
    v = ict.head(id_w)
    dense = sample_surface(topo, v, n_dense, rng)
    pick = rng.choice(len(dense.points), n_surf + n_near, replace=False)
    surf, near_src = pick[:n_surf], pick[n_surf:]
    sigma = np.asarray(NEAR_SIGMAS_M)[rng.integers(0, len(NEAR_SIGMAS_M), n_near)]
    eps = rng.standard_normal(n_near) * sigma
    near = dense.points[near_src] + eps[:, None] * dense.normals[near_src]
    space = rng.uniform(-1, 1, (n_space, 3)) * CANONICAL_SCALE + CANONICAL_CENTER
    query = np.concatenate([near, space]).astype(np.float32)
    sdf = signed_distance(query, dense)
    return {
        "surf_pts": to_canonical(dense.points[surf]),
        "surf_nrm": dense.normals[surf],
        "surf_face": dense.region[surf] == 0,
        "sdf_pts": to_canonical(query),
        "sdf": sdf / CANONICAL_SCALE,
        "anchors": to_canonical(v[anchor_vertices]),
    }


def expression_samples(ict, topo, id_w, exp_w, rng, n_surf=4096, n_near=4096) -> dict:
    v0 = closed_vertices(topo, ict.head(id_w))
    posed = ict.head(id_w, exp_w)
    s = sample_surface(topo, posed, n_surf + n_near, rng)
    tris = topo.triangles[s.tri]
    x0 = np.einsum("nk,nkd->nd", s.bary, v0[tris])
    n0, _ = triangle_normals(v0, topo.triangles)
    n0 = n0[s.tri]
    eps = np.zeros(len(x0), np.float32)
    eps[n_surf:] = rng.standard_normal(n_near) * EXP_NEAR_SIGMA_M
    return {
        "posed_pts": to_canonical(s.points + eps[:, None] * s.normals),
        "canon_pts": to_canonical(x0 + eps[:, None] * n0),
        "on_surface": eps == 0,
        "posed_nrm": s.normals,
    }
