"""Colour frames of the simulated head: a procedural skin albedo, Lambert shading, sRGB.

The albedo is painted on the surface itself: every point of the ICT mesh keeps the position
it has on ICT's generic neutral head (a 3D texture coordinate that follows the skin through
every identity and expression, as a UV map does), and the paint is a function of it, laid
out from the mesh's 68 Multi-PIE landmark vertices: skin of a seeded tone with low-frequency
mottling and warmer cheeks, darker brows (a band along the brow landmarks), red lips (inside
the outer lip contour), a dark lash line on the eyelid margins, and eyeballs with a sclera,
an iris of a seeded colour and a pupil. The colour camera also sees the mouth socket and the
teeth, which the depth stays without (as before). Shading is a key light near the camera
and an ambient term, encoded as sRGB with sensor noise.
"""

import numpy as np

from ..data.ict import EYEBALLS, ICTFaceKit
from .frame import Intrinsics
from .raster import rasterize

MOUTH_SOCKET = (11248, 13294)
TEETH = (17039, 21451)
SKIN_TONES = np.array([[0.78, 0.57, 0.47], [0.66, 0.45, 0.34], [0.50, 0.33, 0.24],
                       [0.35, 0.22, 0.16], [0.85, 0.66, 0.56]])  # fmt: skip
IRIS = np.array([[0.30, 0.17, 0.08], [0.20, 0.32, 0.45], [0.27, 0.33, 0.18], [0.12, 0.07, 0.04]])
BROW = np.array([0.09, 0.06, 0.045])
HAIR = np.array([0.07, 0.05, 0.04])
CLOTH = np.array([0.18, 0.25, 0.40])
PROP = np.array([0.05, 0.05, 0.06])  # a microphone's black
BACKGROUND = np.array([0.42, 0.43, 0.45])
LIGHT = np.array([-0.35, -0.45, -0.82])  # camera space, towards the light: above left


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) distance of 2D points to the segment a-b."""
    ab = b - a
    s = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
    return np.linalg.norm(p - a - s[:, None] * ab, axis=1)


def _polyline_distance(p, line, closed=False):
    pts = np.concatenate([line, line[:1]]) if closed else line
    return np.min([_segment_distance(p, a, b) for a, b in zip(pts[:-1], pts[1:], strict=True)], 0)


def _inside(p, polygon) -> np.ndarray:
    """(N,) points inside a 2D polygon (even-odd rule)."""
    inside = np.zeros(len(p), bool)
    for a, b in zip(polygon, np.roll(polygon, -1, 0), strict=True):
        cross = (a[1] > p[:, 1]) != (b[1] > p[:, 1])
        x = a[0] + (p[:, 1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1] + 1e-12)
        inside ^= cross & (p[:, 0] < x)
    return inside


def _smooth(d, width):
    """1 at d <= 0 falling to 0 at d >= width."""
    return np.clip(1 - d / width, 0, 1) ** 2 * (3 - 2 * np.clip(1 - d / width, 0, 1))


class Albedo:
    """Linear RGB albedo of points given by their generic-neutral ICT positions."""

    def __init__(self, ict: ICTFaceKit, seed: int = 0):
        rng = np.random.default_rng([seed, 7])
        self.neutral = ict.neutral.astype(np.float64)
        lm = self.neutral[np.asarray(ict.vertex_indices["idx_to_landmark_verts"])]
        self.lm = lm
        tone = SKIN_TONES[rng.integers(len(SKIN_TONES))]
        self.skin = tone * rng.uniform(0.92, 1.08, 3)
        self.iris = IRIS[rng.integers(len(IRIS))]
        self.phase = rng.uniform(0, 2 * np.pi, (4, 3))
        eyes = self.neutral[EYEBALLS[0] : EYEBALLS[1]]
        left = eyes[:, 0] > 0
        self.eye_centres = np.stack([eyes[left].mean(0), eyes[~left].mean(0)])

    def skin_at(self, p):
        """Skin with mottling (a few low-frequency waves) and warm cheeks."""
        k = np.array([[31.0, 17.0, 23.0], [-19.0, 37.0, 11.0], [13.0, -29.0, 41.0], [47, 43, -37]])
        mottle = sum(np.sin(p @ k[i] + self.phase[i, 0]) for i in range(4)) / 4
        colour = self.skin * (1 + 0.05 * mottle)[:, None]
        for side in (self.lm[1:5].mean(0), self.lm[12:16].mean(0)):  # cheek centres
            cheek = side * np.array([0.8, 1.0, 1.0])
            w = 0.12 * _smooth(np.linalg.norm(p - cheek, axis=1), 0.03)
            colour = colour * (1 - w[:, None]) + w[:, None] * self.skin * [1.1, 0.78, 0.76]
        return colour

    def __call__(self, p: np.ndarray, part: np.ndarray) -> np.ndarray:
        """(N, 3) albedo of neutral positions ``p`` (N, 3) on ``part`` (N,): 0 skin,
        1 eyeball, 2 mouth socket, 3 teeth."""
        out = np.empty((len(p), 3))
        skin = part == 0
        q = p[skin]
        col = self.skin_at(q)
        xy, lm = q[:, :2], self.lm
        front = q[:, 2] > lm[:, 2].min() - 0.03
        for brow in (lm[17:22], lm[22:27]):  # a band along each brow, thinning outwards
            d = _polyline_distance(xy, (brow + [0, -0.002, 0])[:, :2])
            w = 0.85 * _smooth(d - 0.0035, 0.002) * front
            col = col * (1 - w[:, None]) + w[:, None] * BROW
        lips = _inside(xy, lm[48:60, :2]) & front
        edge = _smooth(_polyline_distance(xy, lm[48:60, :2], closed=True), 0.0015)
        w = np.where(lips, 0.8, 0.8 * edge * front * 0.5)
        col = col * (1 - w[:, None]) + w[:, None] * self.skin * [0.95, 0.45, 0.48]
        for eye in (lm[36:42], lm[42:48]):  # lash line on the lid margins
            w = 0.9 * _smooth(_polyline_distance(xy, eye[:, :2], closed=True), 0.0012) * front
            col = col * (1 - w[:, None]) + w[:, None] * np.array([0.05, 0.04, 0.035])
        out[skin] = col
        eye = part == 1
        if eye.any():
            e = p[eye]
            c = self.eye_centres[(e[:, 0] <= 0).astype(int)]
            r = np.linalg.norm((e - c)[:, :2], axis=1) * (e[:, 2] > c[:, 2])
            r = np.where(e[:, 2] > c[:, 2], r, 1.0)
            sclera = np.array([0.80, 0.76, 0.72])
            iris = self.iris * (0.75 + 0.25 * np.clip(r / 0.0058, 0, 1))[:, None]
            w_iris = _smooth(r - 0.0056, 0.0005)
            w_pupil = _smooth(r - 0.0019, 0.0003)
            col = sclera * (1 - w_iris[:, None]) + w_iris[:, None] * iris
            out[eye] = col * (1 - w_pupil[:, None]) + w_pupil[:, None] * 0.02
        out[part == 2] = [0.22, 0.05, 0.05]
        out[part == 3] = [0.80, 0.78, 0.70]
        return out


def barycentric(vertices, triangles, tri_id, intr: Intrinsics):
    """(N, 3) barycentric coordinates where each hit pixel's ray meets its triangle, and the
    (N,) flat pixel indices; ``tri_id`` from ``rasterize``."""
    pix = np.flatnonzero(tri_id.ravel() >= 0)
    v, u = np.divmod(pix, intr.width)
    ray = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones(len(pix))], 1)
    corners = np.asarray(vertices, np.float64)[triangles[tri_id.ravel()[pix]]]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    e1, e2 = b - a, c - a
    h = np.cross(ray, e2)
    det = np.einsum("ij,ij->i", e1, h)
    det = np.where(np.abs(det) < 1e-15, 1e-15, det)
    s = -a
    w1 = np.einsum("ij,ij->i", s, h) / det
    q = np.cross(s, e1)
    w2 = np.einsum("ij,ij->i", ray, q) / det
    return np.stack([1 - w1 - w2, w1, w2], 1), pix


class ColorRenderer:
    """``render(head_vertices_cam, extra_vertices_cam)`` -> (H, W, 3) uint8 sRGB, for
    vertices in the depth camera's space; ``depth_to_color`` (4, 4) moves them to the
    colour camera of ``intrinsics``."""

    def __init__(self, ict: ICTFaceKit, intrinsics: Intrinsics, depth_to_color, extra_triangles,
                 extra_parts, seed: int = 0):  # fmt: skip
        self.intr, self.T = intrinsics, np.asarray(depth_to_color, np.float64)
        self.albedo = Albedo(ict, seed)
        tris = ict.triangles
        part = np.full(ict.n_vertices, -1)
        part[ict.skin_vertex_mask] = 0
        part[EYEBALLS[0] : EYEBALLS[1]] = 1
        part[MOUTH_SOCKET[0] : MOUTH_SOCKET[1]] = 2
        part[TEETH[0] : TEETH[1]] = 3
        keep = (part[tris] >= 0).all(1) & (part[tris] == part[tris[:, :1]]).all(1)
        head = tris[keep]
        self.triangles = np.concatenate([head, extra_triangles]).astype(np.int64)
        self.tri_part = np.concatenate([part[head[:, 0]], np.asarray(extra_parts, int)])
        self.n_head = ict.n_vertices
        self.seed = seed

    def _raster(self, head, extra):
        scene = head if extra is None or not len(extra) else np.concatenate([head, extra])
        cam = scene @ self.T[:3, :3].T + self.T[:3, 3]
        r = rasterize(cam, self.triangles, self.intr, cull_back=True)
        return cam, r, *barycentric(cam, self.triangles, r.tri_id, self.intr)

    def neutral_at(self, head, extra, uv: np.ndarray):
        """(K, 3) generic-neutral ICT positions of the face seen at colour pixels ``uv``
        (K, 2), and (K,) which land on the face's skin or eyes."""
        _, r, bary, pix = self._raster(head, extra)
        q = np.round(uv).astype(int)
        ok = (q[:, 0] >= 0) & (q[:, 0] < self.intr.width) & (q[:, 1] >= 0)
        ok &= q[:, 1] < self.intr.height
        flat = np.where(ok, q[:, 1] * self.intr.width + q[:, 0], 0)
        where = np.full(self.intr.width * self.intr.height, -1)
        where[pix] = np.arange(len(pix))
        k = where[flat]
        ok &= k >= 0
        ok &= self.tri_part[r.tri_id.ravel()[pix[k]]] <= 1
        tri = self.triangles[r.tri_id.ravel()[pix[k[ok]]]]
        out = np.zeros((len(uv), 3))
        out[ok] = np.einsum("nk,nkd->nd", bary[k[ok]], self.albedo.neutral[tri])
        return out, ok

    def render(self, head, extra=None, index: int = 0) -> np.ndarray:
        from ..geometry.sampling import vertex_normals

        cam, r, bary, pix = self._raster(head, extra)
        tri = self.triangles[r.tri_id.ravel()[pix]]
        part = self.tri_part[r.tri_id.ravel()[pix]]
        colour = np.empty((len(pix), 3))
        on_head = part <= 3
        t, b = tri[on_head], bary[on_head]
        neutral = np.einsum("nk,nkd->nd", b, self.albedo.neutral[t])
        colour[on_head] = self.albedo(neutral, part[on_head])
        colour[part == 4] = HAIR
        colour[part == 5] = CLOTH
        colour[part == 6] = self.albedo.skin  # a hand
        colour[part == 7] = PROP
        n = vertex_normals(cam, self.triangles)
        normal = np.einsum("nk,nkd->nd", bary, n[tri])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        light = LIGHT / np.linalg.norm(LIGHT)
        lambert = np.maximum(normal @ light, 0.0)  # outward normals of what faces the camera
        shade = 0.35 + 0.75 * lambert
        H, W = self.intr.height, self.intr.width
        ramp = 0.9 + 0.2 * np.linspace(0, 1, H)[:, None, None]
        img = np.broadcast_to(BACKGROUND * ramp, (H, W, 3)).reshape(-1, 3).copy()
        img[pix] = colour * shade[:, None]
        rng = np.random.default_rng([self.seed, index, 5])
        srgb = np.clip(img, 0, 1) ** (1 / 2.2) * 255 + rng.normal(0, 1.5, img.shape)
        return np.clip(srgb, 0, 255).astype(np.uint8).reshape(H, W, 3)
