"""Landmarks on a character mesh and its similarity to the model's canonical head space.

A character comes in its own units and axes; it must stand upright, with a known up and
forward axis (Blender: Z up, -Y forward). Turned into the canonical axes (x to the head's
left, y up, z out of the face) its head is the part above the neck: the first narrowing
of the horizontal width profile below the head's widest slice. On the head the detector
takes the top, the nose tip (the most forward point), the back of the skull and the two
sides at ear height, each as the mean of its few most extreme surface samples. The model's
counterparts come from the same detector on the model's mean head, a similarity
(Umeyama) maps one set onto the other, and a trimmed scaled ICP of the head's surface to
the model's refines it.

Manual landmarks name anatomical points (``MANUAL_LANDMARKS``, "left" is the character's
own left) in the mesh's coordinates; their canonical places were measured on
ICT-FaceKit's generic neutral head.
"""

import numpy as np
from scipy.spatial import cKDTree

from ..data.obj import triangulate
from ..errors import DPHMError
from ..geometry.sampling import sample_surface

AUTO_LANDMARKS = ("head_top", "nose_tip", "head_back", "side_left", "side_right")
MANUAL_LANDMARKS = {
    "nose_tip": (0.0, 0.125, 0.559),
    "chin": (0.0, -0.184, 0.457),
    "eye_outer_left": (0.223, 0.292, 0.331),
    "eye_inner_left": (0.102, 0.288, 0.356),
    "eye_inner_right": (-0.102, 0.288, 0.356),
    "eye_outer_right": (-0.223, 0.292, 0.331),
    "mouth_left": (0.115, -0.051, 0.396),
    "mouth_right": (-0.115, -0.051, 0.396),
}
AXES = {"X": 0, "Y": 1, "Z": 2}
SLICES = 96
NECK_NARROWING = 0.75  # width below this share of the head's widest slice is neck
NECK_WIDENING = 1.3  # below the neck, the width grows past this factor at the shoulders
EXTREME = 24  # samples averaged per landmark


def upright_axes(up: str = "Z", forward: str = "-Y") -> np.ndarray:
    """(3, 3) rotation taking mesh coordinates to canonical axes, for axis names like "-Y"."""

    def axis(name):
        key = name.strip().upper().lstrip("+-")
        if key not in AXES:
            raise DPHMError(f"axis {name!r}: expected X, Y or Z with an optional sign")
        v = np.zeros(3)
        v[AXES[key]] = -1.0 if name.strip().startswith("-") else 1.0
        return v

    y, z = axis(up), axis(forward)
    if abs(y @ z) > 0.5:
        raise DPHMError(f"up {up} and forward {forward} must be different axes")
    return np.stack([np.cross(y, z), y, z])


def similarity(src: np.ndarray, dst: np.ndarray, scale: bool = True) -> np.ndarray:
    """(4, 4) least-squares similarity taking src (N, 3) onto dst (N, 3) (Umeyama)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sv, vt = np.linalg.svd(b.T @ a)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    r = u @ np.diag(d) @ vt
    s = (sv * d).sum() / (a**2).sum() if scale else 1.0
    m = np.eye(4)
    m[:3, :3] = s * r
    m[:3, 3] = md - s * r @ ms
    return m


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) moved by a (4, 4) transform."""
    return np.asarray(points, np.float64) @ m[:3, :3].T + m[:3, 3]


def surface_points(vertices, faces, n=20_000, seed=0):
    """(points, normals) sampled by area on a mesh with (F, 3) or (F, 4) faces."""
    tris = triangulate(np.asarray(faces))
    if len(tris) == 0:
        raise DPHMError("the mesh has no faces")
    p, nrm, _, _ = sample_surface(vertices, tris, n, np.random.default_rng(seed))
    return p, nrm


def neck_height(points: np.ndarray) -> float:
    """Height (canonical axes) of the neck: the narrowest slice below the head's widest,
    before the shoulders widen; the bottom of the points when they never narrow."""
    y = points[:, 1]
    top, step = y.max(), max(np.ptp(y), 1e-12) / SLICES
    slot = np.minimum(((top - y) / step).astype(int), SLICES - 1)
    width = np.zeros(SLICES)
    for i in range(SLICES):
        x = points[slot == i, 0]
        width[i] = np.ptp(x) if len(x) else (width[i - 1] if i else 0.0)
    peak, neck = 0.0, None
    for i, w in enumerate(width):
        if neck is None:
            peak = max(peak, w)
            if w < NECK_NARROWING * peak:
                neck = i
        elif w < width[neck]:
            neck = i
        elif w > NECK_WIDENING * width[neck]:
            break
    return float(y.min()) if neck is None else float(top - (neck + 0.5) * step)


def detect_landmarks(vertices, faces, up="Z", forward="-Y") -> dict:
    """The ``AUTO_LANDMARKS`` of an upright mesh: name -> (3,) in the mesh's coordinates."""
    rot = upright_axes(up, forward)
    p = surface_points(vertices, faces)[0] @ rot.T
    head = p[p[:, 1] > neck_height(p)]
    if len(head) < 4 * EXTREME:
        raise DPHMError("the mesh has too little surface above its neck to find landmarks")

    def extreme(points, key):
        return points[np.argsort(key)[-EXTREME:]].mean(0)

    nose = extreme(head, head[:, 2])
    height = head[:, 1].max() - head[:, 1].min()
    band = head[(head[:, 1] > nose[1]) & (head[:, 1] < nose[1] + 0.25 * height)]
    if len(band) < 4 * EXTREME:
        raise DPHMError("the mesh has too little surface above its nose tip to find landmarks")
    found = {
        "head_top": extreme(head, head[:, 1]),
        "nose_tip": nose,
        "head_back": extreme(band, -band[:, 2]),
        "side_left": extreme(band, band[:, 0]),
        "side_right": extreme(band, -band[:, 0]),
    }
    return {k: v @ rot for k, v in found.items()}


def landmark_alignment(landmarks: dict, canonical: dict) -> np.ndarray:
    """(4, 4) similarity mesh -> canonical from landmarks named in both dicts (>= 3)."""
    names = [n for n in landmarks if n in canonical]
    unknown = sorted(set(landmarks) - set(canonical))
    if unknown:
        raise DPHMError(f"unknown landmark(s) {', '.join(unknown)}; known: {', '.join(canonical)}")
    if len(names) < 3:
        raise DPHMError(f"need at least 3 landmarks, got {len(names)}")
    src = np.array([landmarks[n] for n in names], np.float64)
    if src.shape != (len(names), 3) or not np.isfinite(src).all():
        raise DPHMError("landmarks must be finite (x, y, z) positions")
    return similarity(src, np.array([canonical[n] for n in names], np.float64))


def icp(src: np.ndarray, target: np.ndarray, init: np.ndarray, iters=40, keep=0.8, scale=True):
    """(4, 4) similarity (rigid without ``scale``) refining ``init`` so that src (N, 3) lies
    on the target points: each step matches nearest neighbours, keeps the closest ``keep``
    share, and solves Umeyama. Returns the transform and the kept pairs' median distance."""
    tree = cKDTree(target)
    m = init.copy()
    for _ in range(iters):
        moved = apply(m, src)
        dist, idx = tree.query(moved, workers=-1)
        sel = dist <= np.quantile(dist, keep)
        step = similarity(moved[sel], target[idx[sel]], scale)
        m = step @ m
        if np.abs(step - np.eye(4)).max() < 1e-5:
            break
    dist, _ = tree.query(apply(m, src), workers=-1)
    return m, float(np.median(dist))
