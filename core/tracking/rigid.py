"""Rigid initialisation: the head's pose from its points, no landmarks and no clicks.

The template is the model's mean head (canonical SDF of the mean identity code, meshed
once, cut below the top as the segmentation cuts the neck). A coarse search over yaw and
pitch of a face looking at the camera runs a few trimmed ICP steps from
each start (point-to-plane); the best start is refined. The pose maps canonical to camera:
x_cam = s R x_can + t with s = ``SCALE`` (canonical units are 0.2 m; the canonical centre
offset is folded into t).
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..capture.simulate import ICT_TO_CAMERA
from ..data.corpus import CANONICAL_SCALE
from .preprocess import HEAD_HEIGHT

SCALE = CANONICAL_SCALE
YAWS = np.deg2rad([-50, -25, 0, 25, 50])
PITCHES = np.deg2rad([-20, 0, 20])
TRIM = 0.8  # share of closest pairs each ICP step uses


@dataclass
class Template:
    vertices: np.ndarray  # (V, 3) canonical
    normals: np.ndarray  # (V, 3)


def mean_head(model, z_id, resolution=64) -> Template:
    from ..geometry.meshing import largest_component, mesh_sdf
    from ..geometry.sampling import vertex_normals

    v, f = largest_component(*mesh_sdf(model.sdf_fn(z_id), resolution=resolution))
    n = vertex_normals(v, f).astype(np.float32)
    keep = v[:, 1] > v[:, 1].max() - HEAD_HEIGHT / SCALE  # the part segmentation keeps
    return Template(v[keep], n[keep])


def rotation(yaw: float, pitch: float) -> np.ndarray:
    """Canonical -> camera rotation of a face turned by yaw (about up) and pitch."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return ry @ rx @ ICT_TO_CAMERA


def _rodrigues(w: np.ndarray) -> np.ndarray:
    a = np.linalg.norm(w)
    if a < 1e-12:
        return np.eye(3)
    k = w / a
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def icp(points, template: Template, R, t, iters=10, s=SCALE):
    """Refined (R, t) and the median distance (metres) after trimmed point-to-plane ICP."""
    front = template.normals @ R.T
    vis = front[:, 2] < 0.2  # template points that can face the camera
    tree = cKDTree(template.vertices[vis])
    tv, tn = template.vertices[vis], template.normals[vis]
    for _ in range(iters):
        dist, idx = tree.query((points - t) @ R / s)
        keep = dist <= np.quantile(dist, TRIM)
        p = points[keep]
        q = s * tv[idx[keep]] @ R.T + t
        m = tn[idx[keep]] @ R.T
        a = np.hstack([np.cross(q, m), m])
        b = np.einsum("nd,nd->n", p - q, m)
        x = np.linalg.lstsq(a, b, rcond=None)[0]
        dR = _rodrigues(x[:3])
        R, t = dR @ R, dR @ t + x[3:]
    dist, _ = tree.query((points - t) @ R / s)
    return R, t, float(np.median(dist) * s)


def initial_pose(points, template: Template, n=800, seed=0):
    """(R, t, median residual in metres) of the best coarse start after ICP."""
    rng = np.random.default_rng(seed)
    pts = points[rng.choice(len(points), min(n, len(points)), replace=False)]
    best = None
    for yaw in YAWS:
        for pitch in PITCHES:
            R = rotation(yaw, pitch)
            front = (template.normals @ R.T)[:, 2] < -0.3
            centre = template.vertices[front].mean(0)
            t = np.median(pts, 0) - SCALE * R @ centre
            cand = icp(pts, template, R, t, iters=6)
            if best is None or cand[2] < best[2]:
                best = cand
    return icp(points, template, best[0], best[1], iters=15)
