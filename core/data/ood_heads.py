"""Heads outside ICT-FaceKit's linear span, for measuring the model and the refinement.

Two kinds, both as (vertices, triangles, face mask) in ICT's frame and metres:

- ``pushed``: an ICT head with a change no combination of its identity modes makes: a
  smooth random displacement along the normals, a longer and wider nose, a chin pushed
  forward and down, ears standing out. Expressions still apply on top (same topology).
- ``head_mesh``: any head mesh (a real scan, a hand-made head): read from OBJ, its unit
  found from its size, turned and moved onto ICT's mean head (a start at the nose tip,
  then trimmed rigid ICP: the scale is the head's own), its winding made outward. Meshes
  must have y up and the face toward +z, as scans and ICT have. Its face mask is the part
  within ``FACE_NEAR`` of ICT's narrow face and at least ``EDGE`` from the mesh's open
  border (where a scan ends, a complete head goes on: its surface there is no error).
"""

import numpy as np
from scipy.spatial import cKDTree

from ..errors import DPHMError
from ..geometry.meshing import boundary_edges
from ..geometry.sampling import vertex_normals
from ..transfer.landmarks import apply, icp
from .ict import HEAD_NECK, ICTFaceKit
from .obj import read_obj, triangulate

PUSHED = ("smooth", "nose", "chin", "ears")
FACE_NEAR = 0.015  # metres
EDGE = 0.01
UNITS = {"metres": 1.0, "centimetres": 0.01, "millimetres": 0.001}


def _bump(v, centre, sigma):
    return np.exp(-np.sum((v - centre) ** 2, 1) / (2 * sigma**2))[:, None]


def pushed(ict: ICTFaceKit, base: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """``base`` (an ICT head, metres) changed by ``kind`` (one of ``PUSHED``)."""
    if kind not in PUSHED:
        raise DPHMError(f"unknown head change {kind!r} ({', '.join(PUSHED)})")
    v = np.asarray(base, np.float64).copy()
    skin = np.zeros(len(v), bool)
    skin[: HEAD_NECK[1]] = True
    n = vertex_normals(v, ict.skin_triangles)
    face = v[: ict.face_vertex_mask.sum()]
    nose = face[np.argmax(face[:, 2])]
    if kind == "smooth":  # 3-4 mm bumps and dents 2-4 cm across
        rng = np.random.default_rng([seed, 7])
        d = np.zeros(len(v))
        for c in v[rng.choice(np.flatnonzero(skin), 24, replace=False)]:
            d += rng.uniform(-0.004, 0.004) * _bump(v, c, rng.uniform(0.01, 0.02))[:, 0]
        v += (d * skin)[:, None] * n
    elif kind == "nose":  # 6 mm longer, 20 % wider
        w = _bump(v, nose - (0, 0.01, 0.01), 0.014) * skin[:, None]
        v += w * (np.array([0.0, -0.002, 0.006]) + (v - nose) * np.array([0.2, 0.0, 0.0]))
    elif kind == "chin":  # 5 mm forward, 3 mm down
        chin = face[np.argmin(face[:, 1] - 0.3 * face[:, 2])]
        v += _bump(v, chin, 0.02) * skin[:, None] * np.array([0.0, -0.003, 0.005])
    else:  # ears 6 mm further out
        for side in (1.0, -1.0):
            ear = v[skin][np.argmax(side * v[skin, 0])]
            v += _bump(v, ear, 0.02) * skin[:, None] * np.array([side * 0.006, 0.0, -0.002])
    return v.astype(np.float32)


def read_head_mesh(path, ict: ICTFaceKit):
    """(vertices, triangles, face mask) of the head mesh in ``path`` placed in ICT's frame."""
    v, f = read_obj(path)
    tris = triangulate(f)
    if len(tris) == 0:
        raise DPHMError(f"{path}: the mesh has no faces")
    size = float(np.max(v.max(0) - v.min(0)))
    unit = next((u for u, k in UNITS.items() if 0.1 <= size * k <= 0.5), None)
    if unit is None:
        raise DPHMError(
            f"{path}: a head {size:g} units across is neither metres, centimetres nor "
            "millimetres (a head is 0.1-0.5 m)"
        )
    v = v.astype(np.float64) * UNITS[unit]
    ref = ict.neutral[: HEAD_NECK[1]].astype(np.float64)
    ref_face = ict.neutral[ict.face_vertex_mask].astype(np.float64)
    central = np.abs(v[:, 0] - np.median(v[:, 0])) < 0.03
    v += ref_face[np.argmax(ref_face[:, 2])] - v[central][np.argmax(v[central, 2])]
    m, _ = icp(v[:: max(1, len(v) // 5000)], ref, np.eye(4), iters=30, keep=0.7, scale=False)
    v = apply(m, v)
    if np.mean(np.sum(vertex_normals(v, tris) * (v - ref.mean(0)), 1) > 0) < 0.5:
        tris = tris[:, ::-1].copy()  # wound inward: cull_back would hide the face
    dist, idx = cKDTree(ict.neutral[: HEAD_NECK[1]]).query(v)
    mask = (dist < FACE_NEAR) & ict.face_vertex_mask[: HEAD_NECK[1]][idx]
    border = np.unique(boundary_edges(tris))
    if len(border):
        mask &= cKDTree(v[border]).query(v)[0] >= EDGE
    if mask.sum() < 100:
        raise DPHMError(f"{path}: the mesh does not look like a face with y up and +z forward")
    return v.astype(np.float32), tris, mask
