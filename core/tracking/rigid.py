"""Rigid initialisation: the head's pose from its points, no landmarks and no clicks.

The template is the model's mean head (canonical SDF of the mean identity code, meshed
once, cut below the top in its own frame, as far down as segmented heads reach). A coarse
search runs a few trimmed ICP steps (point-to-plane) from each start and refines the best.
The starts cover yaw from profile to profile and pitch, at the rolls the head's image axes
allow: its long axis either way up (a phone is held either way), and across it too when
the head looks round (a profile, a face seen from below). The pose maps canonical to
camera: x_cam = s R x_can + t with s = ``SCALE`` (canonical units are 0.2 m; the canonical
centre offset is folded into t).
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..capture.simulate import ICT_TO_CAMERA
from ..data.corpus import CANONICAL_SCALE
from .preprocess import image_axes

SCALE = CANONICAL_SCALE
YAWS = np.deg2rad([-80, -50, -25, 0, 25, 50, 80])
PITCHES = np.deg2rad([-20, 0, 20])
ROUND = 1.2  # major / minor image extent under which the head's roll is ambiguous
TEMPLATE_HEIGHT = 0.25  # metres of the mean head below its top that the template keeps
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
    keep = v[:, 1] > v[:, 1].max() - TEMPLATE_HEIGHT / SCALE  # head and some neck
    return Template(v[keep], n[keep])


def rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Canonical -> camera rotation of a face turned by yaw (about up) and pitch, then
    rolled about the viewing axis (positive turns the head's top towards the image's +x)."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx @ ICT_TO_CAMERA


def rolls(points) -> list[float]:
    """The rolls a head's image axes allow (radians): along its long axis either way up,
    and across it when it looks round."""
    (major, minor), axis = image_axes(points)
    up = np.arctan2(axis[0], -axis[1])  # roll that turns image-up (-y) onto the axis
    out = [up, up + np.pi]
    if major < ROUND * minor:
        out += [up + np.pi / 2, up - np.pi / 2]
    return out


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
    for roll in rolls(points):
        for yaw in YAWS:
            for pitch in PITCHES:
                R = rotation(yaw, pitch, roll)
                front = (template.normals @ R.T)[:, 2] < -0.3
                centre = template.vertices[front].mean(0)
                t = np.median(pts, 0) - SCALE * R @ centre
                cand = icp(pts, template, R, t, iters=6)
                if best is None or cand[2] < best[2]:
                    best = cand
    return icp(points, template, best[0], best[1], iters=15)
