"""From a depth frame to the head's points and normals in camera space.

Rays come from the intrinsics with the lens distortion undone (OpenCV rational model).
The head is the nearest connected blob of plausible size (depth jumps over ``JUMP``
split blobs) with some depth relief. Nothing assumes the head is upright in the image (a
phone is held either way) or alone (bodies, hair): the blob is cut to a ball of
``HEAD_RADIUS`` around a centre ``CENTRE_DEPTH`` behind the middle of its front
(``FRONT_SLAB`` deep: the face, from any side), which keeps the head and drops shoulders
and chest; its size is checked along its own principal axes. Normals come from a
bilaterally filtered depth map. Other blobs inside the ball (the neck that the jaw's
edge splits off, hair, a hand) are kept ``beside`` the head's points: the fit never uses
them, the identity refinement does. A frame without such a blob is returned with ``found``
False and the reason.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

RANGE = (0.12, 1.6)  # metres from the camera (a phone's TrueDepth sees faces from 0.2 m)
JUMP = 0.015  # metres between neighbouring pixels: a blob boundary
FRONT_SLAB = 0.04  # metres behind the nearest point that make up the front
CENTRE_DEPTH = 0.085  # the head's centre behind the middle of its front, metres
HEAD_RADIUS = 0.155  # metres around that centre that are head (and some neck)
MINOR_RANGE = (0.10, 0.30)  # plausible extents along the head's image axes, metres
MAJOR_RANGE = (0.12, 0.40)
RELIEF_MIN = 0.012  # metres off the blob's best plane (95th percentile): a head is round,
# a wall is not, seen straight or at a slant
MIN_POINTS = 300
STATS_POINTS = 8000  # of a blob's points, those its centre and extents are measured on
BESIDE_POINTS = 1000  # other blobs' points kept beside the head's (for the refinement)


@dataclass
class Observation:
    points: np.ndarray  # (N, 3) camera space, metres
    normals: np.ndarray  # (N, 3) unit, towards the camera
    index: int
    timestamp: float
    found: bool = True
    reason: str = ""
    landmarks: np.ndarray | None = None  # (A, 3) the head model's anchors, camera space
    landmark_spread: np.ndarray | None = None  # (A,) their expected errors, metres
    face: object | None = None  # face_landmarks.FaceLandmarks from the colour stream
    face_fit: tuple | None = None  # (points (M, 3), canonical targets (M, 3), spreads (M,))
    beside: np.ndarray | None = None  # (K, 3) other blobs' points within the head's ball


def _undistort(xd, yd, k, iters=20):
    """Normalised pinhole coordinates of distorted ones (OpenCV rational model)."""
    k = list(k) + [0.0] * (8 - len(k))
    k1, k2, p1, p2, k3, k4, k5, k6 = k[:8]
    x, y = xd.copy(), yd.copy()
    for _ in range(iters):
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return x, y


@lru_cache(maxsize=4)
def rays(intr) -> np.ndarray:
    """(H, W, 2) undistorted x/z, y/z of every pixel centre."""
    v, u = np.mgrid[0 : intr.height, 0 : intr.width].astype(np.float64)
    x, y = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    if any(intr.distortion):
        x, y = _undistort(x, y, intr.distortion)
    return np.stack([x, y], -1).astype(np.float32)


def bilateral_at(depth, ys, xs, radius=2, sigma_px=1.5, sigma_m=0.01) -> np.ndarray:
    """Edge-preserving smoothing of a depth map (0 = no reading) at pixels (ys, xs) only:
    each reading's weighted mean over its window, weights falling with pixel distance and
    with depth difference."""
    pad = np.pad(depth, radius)
    z0 = depth[ys, xs]
    num, den = np.zeros_like(z0), np.zeros_like(z0)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            z = pad[ys + radius + dy, xs + radius + dx]
            near = (dx * dx + dy * dy) / (2 * sigma_px**2)
            wgt = np.exp(-near - (z - z0) ** 2 / (2 * sigma_m**2))
            wgt *= z > 0
            num += wgt * z
            den += wgt
    return np.where(z0 > 0, num / np.maximum(den, 1e-12), 0).astype(np.float32)


def _blobs(depth):
    """Labels of connected regions without depth jumps, and their count."""
    valid = (depth > RANGE[0]) & (depth < RANGE[1])
    edge = np.zeros_like(valid)
    jx = np.abs(np.diff(depth, axis=1)) > JUMP
    jy = np.abs(np.diff(depth, axis=0)) > JUMP
    edge[:, 1:] |= jx
    edge[:, :-1] |= jx
    edge[1:] |= jy
    edge[:-1] |= jy
    return ndimage.label(valid & ~edge)


def _few(xyz, n=STATS_POINTS):
    """Every k-th of the points (N, 3), at most about ``n``: enough for their statistics."""
    return xyz[:: max(1, len(xyz) // n)]


def _quantiles(x, qs) -> np.ndarray:
    """Order statistics of a 1-D array at fractions ``qs`` (by partition, no interpolation)."""
    k = [min(len(x) - 1, int(q * len(x))) for q in qs]
    return np.partition(x, k)[k]


def _within(xyz, centre, radius) -> np.ndarray:
    d = xyz - centre
    return np.einsum("ij,ij->i", d, d) < radius * radius


def head_centre(xyz) -> np.ndarray:
    """The head's centre from its points (N, 3): behind the middle of the front."""
    xyz = _few(xyz)
    z_front = _quantiles(xyz[:, 2], [0.02])[0]
    front = xyz[xyz[:, 2] < z_front + FRONT_SLAB]
    centre = np.median(front, 0)
    return centre + CENTRE_DEPTH * centre / np.linalg.norm(centre)  # along the viewing ray


def _crop(xyz):
    """Mask of head points within one blob's points (N, 3): a ball around the head's
    centre, twice (the second centre from the first ball's points)."""
    keep = _within(xyz, head_centre(xyz), HEAD_RADIUS)
    if keep.sum() < MIN_POINTS:
        return keep
    return _within(xyz, head_centre(xyz[keep]), HEAD_RADIUS)


def relief(pts) -> float:
    """How far the points stand off their best-fitting plane (95th percentile, metres)."""
    sub = _few(pts, 2000)
    centred = sub - sub.mean(0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return float(np.percentile(np.abs(centred @ normal), 95))


def image_axes(pts) -> tuple[np.ndarray, np.ndarray]:
    """(extents (major, minor) in metres, major axis (2,) in the image plane) of the points'
    x, y: the head's own axes, whatever its roll."""
    xy = _few(pts)[:, :2]
    xy = xy - xy.mean(0)
    w, v = np.linalg.eigh(np.cov(xy.T))
    axes = v[:, ::-1]  # major first
    proj = xy @ axes
    ext = np.array([np.ptp(_quantiles(p, [0.02, 0.98])) for p in proj.T])
    return ext, axes[:, 0]


def segment_head(frame, max_points=None, seed=0, beside=False) -> Observation:
    """The head's points and normals, or an Observation with ``found`` False; with
    ``beside`` also the other blobs' points inside the head's ball."""
    depth = frame.depth.astype(np.float32)
    miss = Observation(np.zeros((0, 3)), np.zeros((0, 3)), frame.index, frame.timestamp, False)
    labels, n = _blobs(depth)
    if n == 0:
        miss.reason = "no depth in range"
        return miss
    intr = frame.intrinsics
    lab = labels[::2, ::2].ravel()  # every other pixel each way: areas to a few per cent
    area = np.bincount(lab, 4 * (depth[::2, ::2].ravel() / intr.fx) ** 2, n + 1)[1:]
    big = np.flatnonzero(area >= 0.004) + 1  # m^2, well under a face seen from the front
    boxes = ndimage.find_objects(labels)
    masks = {i: labels[boxes[i - 1]] == i for i in big}  # each blob within its box
    near = [depth[boxes[i - 1]][masks[i]].min() for i in big]
    r = rays(intr)
    reason = "no blob of head size"
    for i in big[np.argsort(near)]:
        box = boxes[i - 1]
        vv, uu = np.nonzero(masks[i])
        vv, uu = vv + box[0].start, uu + box[1].start
        xyz = np.concatenate([r[vv, uu] * depth[vv, uu, None], depth[vv, uu, None]], 1)
        keep = _crop(xyz)
        if keep.sum() < MIN_POINTS:
            continue
        pts = xyz[keep]
        (major, minor), _ = image_axes(pts)
        if not (MINOR_RANGE[0] <= minor <= MINOR_RANGE[1]):
            reason = f"nearest blob is {minor * 100:.0f} cm across, not a head"
            continue
        if not (MAJOR_RANGE[0] <= major <= MAJOR_RANGE[1]):
            reason = f"nearest blob is {major * 100:.0f} cm long, not a head"
            continue
        if relief(pts) < RELIEF_MIN:
            reason = "nearest blob is flat, not a head"
            continue
        vv, uu = vv[keep], uu[keep]
        obs = _with_normals(frame, depth, r, vv, uu, max_points, seed)
        if beside:
            obs.beside = _beside(labels, depth, r, i, pts, vv, uu, seed)
        return obs
    miss.reason = reason
    return miss


def _beside(labels, depth, r, label, pts, vv, uu, seed, n=BESIDE_POINTS):
    """Up to ``n`` points of the other blobs within the head's ball (the neck that the jaw's
    edge splits off, but also hair, a hand, a shoulder): not for the fit, only for the
    identity refinement, which keeps those the refined head's surface passes near."""
    centre = head_centre(pts)
    pad = (vv.max() - vv.min()) // 2
    v0, v1 = max(vv.min() - pad, 0), min(vv.max() + pad + 1, depth.shape[0])
    u0, u1 = max(uu.min() - pad, 0), min(uu.max() + pad + 1, depth.shape[1])
    lab = labels[v0:v1, u0:u1]
    cv, cu = np.nonzero((lab > 0) & (lab != label))
    cv, cu = cv + v0, cu + u0
    z = depth[cv, cu]
    xyz = np.concatenate([r[cv, cu] * z[:, None], z[:, None]], 1)
    xyz = xyz[_within(xyz, centre, HEAD_RADIUS)]
    if len(xyz) > n:
        xyz = xyz[np.random.default_rng(seed).choice(len(xyz), n, replace=False)]
    return xyz.astype(np.float32)


def _with_normals(frame, depth, r, vv, uu, max_points, seed):
    """The observation of head pixels (vv, uu): up to ``max_points`` of those whose four
    neighbours are head pixels too, with normals from the bilaterally smoothed depth at
    those neighbours (smoothed there only)."""
    m = 3
    v0, v1 = max(vv.min() - m, 0), min(vv.max() + m + 1, depth.shape[0])
    u0, u1 = max(uu.min() - m, 0), min(uu.max() + m + 1, depth.shape[1])
    d = np.zeros((v1 - v0, u1 - u0), np.float32)
    d[vv - v0, uu - u0] = depth[vv, uu]
    ok = np.zeros(d.shape, bool)
    inner = d > 0
    ok[1:-1, 1:-1] = inner[1:-1, 1:-1] & inner[2:, 1:-1] & inner[:-2, 1:-1]
    ok[1:-1, 1:-1] &= inner[1:-1, 2:] & inner[1:-1, :-2]
    ys, xs = np.nonzero(ok)
    if max_points and len(ys) > max_points:
        pick = np.random.default_rng(seed).choice(len(ys), max_points, replace=False)
        ys, xs = ys[pick], xs[pick]
    ny, nx = ys[:, None] + _STAR[:, 0], xs[:, None] + _STAR[:, 1]  # (N, 4) neighbours
    z = bilateral_at(d, ny.ravel(), nx.ravel()).reshape(ny.shape)
    p = np.concatenate([r[ny + v0, nx + u0] * z[..., None], z[..., None]], -1)
    n = np.cross(p[:, 1] - p[:, 0], p[:, 3] - p[:, 2])  # (right - left) x (down - up)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    raw = np.concatenate([r[ys + v0, xs + u0] * d[ys, xs, None], d[ys, xs, None]], 1)
    n *= np.where(np.einsum("ij,ij->i", n, raw) > 0, -1.0, 1.0)[:, None]
    return Observation(raw.astype(np.float32), n.astype(np.float32), frame.index, frame.timestamp)


_STAR = np.array([(0, -1), (0, 1), (-1, 0), (1, 0)])  # left, right, up, down (dy, dx)
