"""Face landmarks from the colour stream: MediaPipe's face mesh, lifted to 3D by the depth.

MediaPipe (``mediapipe==0.10.14``, the ``landmarks`` extra: its wheel ships the face
detection and face mesh ``.tflite`` models, later versions download them at run time) finds
478 points (468 of the face mesh and 10 of the irises) in an upright crop: the head's
segmented points, moved into the colour camera by the depth-to-colour calibration, give the
crop's centre and size, and the head's up direction (from the last pose, or else either way
along the points' long axis) turns the crop upright, so a rolled or upside-down face, or a
small face in a wide colour image, is found as an upright selfie is. Each landmark is then
lifted to 3D along its colour ray: a point on the ray is moved into the depth camera,
reads the depth there, and slides along the ray to that depth (three steps suffice for the
few centimetres between the cameras).
"""

import os
import warnings
from dataclasses import dataclass

import numpy as np

from ..capture.frame import DepthFrame
from ..capture.raster import project
from ..capture.warn import warn
from ..data.arkit import ARKIT_NAMES
from ..errors import DPHMError

N_LANDMARKS = 478
CROP = 256  # pixels of the square crop MediaPipe sees
MARGIN = 1.5  # crop side over the head's larger extent in the colour image
STEADY_RMS = 0.006  # metres: steady points further from the aligned embedding are no face
SCALE_RANGE = (0.8, 1.25)  # of the embedding's size, what a real head may be
# Face mesh indices (MediaPipe's topology): points that move little with expressions (nose,
# forehead, eye corners, cheekbones) align a face to the embedding; the eyes, brows, irises
# and lips carry what the ARKit weights are read from.
STEADY = [1, 4, 5, 6, 8, 9, 151, 168, 195, 197, 33, 133, 263, 362, 116, 345]
EYES = [7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
        249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466]
BROWS = [46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300,
         334, 336]
IRISES = list(range(468, 478))
LIPS = [0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
        185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402,
        405, 409, 415]
FEATURES = EYES + BROWS + IRISES + LIPS


def available() -> bool:
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return True


class FaceMesh:
    """``find(frame, head_points, ups)`` -> (478, 2) colour pixels or None."""

    def __init__(self):
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ start-up chatter
        try:
            import cv2
            import mediapipe as mp
        except ImportError as e:
            raise DPHMError(
                f"colour landmarks need MediaPipe: pip install 'dphm[landmarks]' ({e})"
            ) from None
        self._cv2 = cv2
        with warnings.catch_warnings():  # protobuf deprecations inside MediaPipe
            warnings.simplefilter("ignore")
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=0.5,
            )  # fmt: skip

    def close(self):
        self._mesh.close()

    def find(self, frame: DepthFrame, head_points: np.ndarray, ups, check=None):
        """Landmarks of the face whose segmented camera-space points are ``head_points``;
        ``ups`` are candidate up directions in the colour image (unit 2D, tried in turn;
        None for the points' long axis either way and across). A face upside down in its
        crop can come back as a plausible-looking but wrong mesh, so ``check(uv, shape)``
        (when given; ``shape`` is MediaPipe's own 3D face, crop pixels) must accept a
        result, else the next direction is tried."""
        uv = project(to_color(head_points, frame), frame.color_intrinsics)
        lo, hi = np.percentile(uv, 2, 0), np.percentile(uv, 98, 0)
        centre, size = (lo + hi) / 2, MARGIN * float(np.max(hi - lo))
        if not np.isfinite(size) or size < 16:
            return None
        for up in ups if ups is not None else long_axis_ups(uv):
            M = crop_transform(centre, size, up)
            crop = self._cv2.warpAffine(np.ascontiguousarray(frame.color), M, (CROP, CROP),
                                        flags=self._cv2.INTER_AREA)  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = self._mesh.process(crop).multi_face_landmarks
            if found:
                shape = np.array([(p.x, p.y, p.z) for p in found[0].landmark]) * CROP
                uv = (shape[:, :2] - M[:, 2]) @ np.linalg.inv(M[:, :2]).T
                result = uv if check is None else check(uv, shape)
                if result is not None:
                    return result
        return None


def color_problem(frame: DepthFrame) -> str:
    """Why a frame's colour cannot be used for landmarks ("" when it can)."""
    if frame.color is None:
        return "the frames carry no colour"
    ci = frame.color_intrinsics
    if ci is None:
        return "the colour stream has no calibration"
    c = np.asarray(frame.color)
    if c.ndim != 3 or c.shape[2] != 3 or c.dtype != np.uint8:
        return f"colour frames are {c.dtype} {c.shape}, not 8-bit RGB"
    if c.shape[:2] != (ci.height, ci.width):
        return (f"colour frames are {c.shape[1]}x{c.shape[0]} but their calibration is "
                f"{ci.width}x{ci.height}")  # fmt: skip
    return ""


def crop_transform(centre, size, up) -> np.ndarray:
    """(2, 3) affine from the colour image to the CROP x CROP crop: ``centre`` to the
    middle, ``size`` pixels across, image direction ``up`` to the crop's up (-y)."""
    ux, uy = np.asarray(up, float) / np.linalg.norm(up)
    rot = np.array([[-uy, ux], [-ux, -uy]])  # takes (ux, uy) to (0, -1)
    A = rot * (CROP / size)
    return np.hstack([A, (CROP / 2 - A @ centre)[:, None]])


def long_axis_ups(uv: np.ndarray) -> list[np.ndarray]:
    """Both ways along the long axis of image points, the more upright (-y) first, then
    across it."""
    c = uv - uv.mean(0)
    _, vecs = np.linalg.eigh(c.T @ c)
    axis = vecs[:, -1] * (-1 if vecs[1, -1] > 0 else 1)
    across = np.array([-axis[1], axis[0]])
    return [axis, -axis, across, -across]


def _depth_to_color(frame: DepthFrame) -> np.ndarray:
    """The frame's 4x4 depth-to-colour transform (the identity for aligned streams)."""
    return np.eye(4) if frame.depth_to_color is None else np.asarray(frame.depth_to_color)


def to_color(points: np.ndarray, frame: DepthFrame) -> np.ndarray:
    T = _depth_to_color(frame)
    return points @ T[:3, :3].T + T[:3, 3]


def up_direction(R: np.ndarray, frame: DepthFrame) -> np.ndarray:
    """The image direction of a pose's up (canonical +y) in the colour camera."""
    T = _depth_to_color(frame)
    up = T[:3, :3] @ R[:, 1]
    return up[:2] / max(np.linalg.norm(up[:2]), 1e-9)


def lift(uv: np.ndarray, frame: DepthFrame, z0: float, steps: int = 3):
    """(K, 3) depth-camera points of colour pixels ``uv`` (K, 2) and (K,) which had depth;
    ``z0`` (metres) starts the search along each ray."""
    ci, di = frame.color_intrinsics, frame.intrinsics
    px = np.asarray(uv, np.float64)
    if ci.distortion and any(ci.distortion):
        import cv2

        px = cv2.undistortPoints(px[:, None].astype(np.float64), ci.K,
                                 np.asarray(ci.distortion), P=ci.K)[:, 0]  # fmt: skip
    T = _depth_to_color(frame)
    inv = np.linalg.inv(T)
    ray = np.stack([(px[:, 0] - ci.cx) / ci.fx, (px[:, 1] - ci.cy) / ci.fy, np.ones(len(px))], 1)
    d, o = ray @ inv[:3, :3].T, inv[:3, 3]  # the ray in the depth camera: o + z d
    z = np.full(len(px), float(z0))
    depth, H, W = frame.depth, di.height, di.width
    ok = np.zeros(len(px), bool)
    for _ in range(steps):
        p = o + z[:, None] * d
        q = np.round(project(p, di)).astype(int)
        u, v = np.clip(q[:, 0], 1, W - 2), np.clip(q[:, 1], 1, H - 2)
        inside = (q[:, 0] == u) & (q[:, 1] == v)
        win = np.stack([depth[v + dv, u + du] for dv in (-1, 0, 1) for du in (-1, 0, 1)], 1)
        win = np.where(win > 0, win, np.nan)
        ok = inside & np.isfinite(win).any(1)
        # the pixel's own reading, or the nearest surface around a hole
        reading = np.where(np.isfinite(win[:, 4]), win[:, 4],
                           np.nanmin(np.where(ok[:, None], win, 1.0), 1))  # fmt: skip
        z = np.where(ok, (reading - o[2]) / d[:, 2], z)
    return o + z[:, None] * d, ok


def similarity(src: np.ndarray, dst: np.ndarray):
    """(s, R, t) with dst ~ s R src + t, least squares (Umeyama)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a)
    D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / max((a * a).sum(), 1e-12))
    return s, R, md - s * R @ ms


def align(points, ok, canonical):
    """(s, R, t) taking the embedding (canonical units) onto lifted landmarks (metres) by
    the steady points, or None with fewer than six of them lifted."""
    steady = np.array([i for i in STEADY if ok[i]])
    if len(steady) < 6:
        return None
    return similarity(canonical[steady], points[steady])


FEATURE_KIND = "mediapipe-shape/2"  # what ``features`` reads; checkpoints name theirs
# per eye (the subject's right, then left): corners, three upper and three lower lid
# points, the iris centre, three brow points
EYE_PARTS = (
    (33, 133, (160, 159, 158), (144, 145, 153), 468, (70, 105, 107)),
    (263, 362, (387, 386, 385), (373, 374, 380), 473, (300, 334, 336)),
)


def _eye_ratios(x) -> list[float]:
    """Lid gaps, iris place and brow heights of an aligned face, over each eye's width:
    scale-free measures of blinks, gaze and brows (what eye-aspect-ratio blink detectors
    read), nonlinear in the landmarks where the offsets are linear."""
    out = []
    for outer, inner, upper, lower, iris, brow in EYE_PARTS:
        a, b = x[outer], x[inner]
        width = np.linalg.norm(b - a)
        axis = (b - a) / width
        mid = (a + b) / 2
        out += [np.linalg.norm(x[u] - x[v]) / width for u, v in zip(upper, lower, strict=True)]
        rel = x[iris] - mid
        out += [rel @ axis / width, np.linalg.norm(rel - (rel @ axis) * axis) / width]
        out += [np.linalg.norm(x[k] - mid) / width for k in brow]
    return out


def features(shape, canonical) -> np.ndarray:
    """Offsets (canonical units) of the feature landmarks from the embedding, once
    MediaPipe's own 3D face ``shape`` (478, 3) is aligned to it by the steady points, and
    the eyes' ratios. That face is smooth (no sensor noise) and whole (no holes), where the
    landmarks lifted through the depth carry the sensor's noise: depth places the face,
    MediaPipe's shape says what it does."""
    s, R, t = similarity(shape[STEADY], canonical[STEADY])
    x = s * shape @ R.T + t
    off = (x[FEATURES] - canonical[FEATURES]).ravel()
    return np.concatenate([off, _eye_ratios(x)]).astype(np.float32)


def ridge(x, y, lam):
    """Standardised ridge regression; returns (W (F+1, K), mean, std)."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], 1)
    reg = lam * len(x) * np.eye(z.shape[1])
    reg[-1, -1] = 0
    return np.linalg.solve(z.T @ z + reg, z.T @ y), mean, std


def apply_ridge(x, W, mean, std):
    x = np.atleast_2d(x)
    return np.concatenate([(x - mean) / std, np.ones((len(x), 1))], 1) @ W


@dataclass
class FaceLandmarks:
    uv: np.ndarray  # (478, 2) colour pixels
    shape: np.ndarray  # (478, 3) MediaPipe's own 3D face (crop pixels, y down, z away)
    points: np.ndarray  # (478, 3) depth-camera metres (on the ray at the face's depth if not ok)
    ok: np.ndarray  # (478,) lifted through the depth
    pose: tuple  # (s, R, t): embedding (canonical) -> depth camera
    rms: float  # metres, of the steady points after alignment


class Landmarker:
    """MediaPipe plus the embedding (``canonical``, (478, 3)): ``observe(frame, points,
    R)`` gives the FaceLandmarks of the head whose points were segmented, or None."""

    def __init__(self, canonical: np.ndarray, scale: float, mesh: FaceMesh | None = None):
        self.mesh, self.canonical, self.scale = mesh or FaceMesh(), np.asarray(canonical), scale

    def observe(self, frame: DepthFrame, points: np.ndarray, R=None) -> FaceLandmarks | None:
        z0 = float(np.median(points[:, 2]))

        def check(uv, shape):
            p, ok = lift(uv, frame, z0)
            sim = align(p, ok, self.canonical)
            if sim is None:
                return None
            s, Rs, t = sim
            steady = [i for i in STEADY if ok[i]]
            fit = s * self.canonical[steady] @ Rs.T + t
            rms = float(np.sqrt(((fit - p[steady]) ** 2).sum(1).mean()))
            lo, hi = SCALE_RANGE
            if rms > STEADY_RMS or not lo * self.scale <= s <= hi * self.scale:
                return None
            return FaceLandmarks(uv, shape, p, ok, sim, rms)

        ups = None
        if R is not None:
            up = up_direction(R, frame)
            ups = [up, *long_axis_ups(project(to_color(points, frame), frame.color_intrinsics))]
        return self.mesh.find(frame, points, ups, check)

    def close(self):
        self.mesh.close()


# ARKit weights read from the landmarks rather than from the depth fit's expression code
# (the eyelids, which depth barely sees; gaze is not: the linear map does not read the
# irises), and those averaged from both (brows and smiles: each source alone is noisier)
FROM_LANDMARKS = tuple(n for n in ARKIT_NAMES if n.startswith(("eyeBlink", "eyeSquint", "eyeWide")))
BLENDED = tuple(n for n in ARKIT_NAMES if n.startswith(("brow", "mouthSmile")))
FIT_SPREAD = 0.003  # metres: landmarks MediaPipe holds better than this enter the fit
FIT_SIGMA = 0.002  # metres added (in quadrature) to a landmark's spread in the fit


class FaceModel:
    """The shipped embedding and landmark -> ARKit regression (``dphm train landmarks``),
    with a Landmarker to observe frames; ``load()`` returns None and says why once when
    MediaPipe or the weights are missing."""

    def __init__(self, content, scale: float):
        self.canonical = content["canonical"].double().numpy()
        self.spread = content["spread_mm"].double().numpy() / 1000
        self.W, self.mean, self.std = (content[k].double().numpy() for k in ("W", "mean", "std"))
        self.sha256 = content.get("sha256", "")
        self.landmarker = Landmarker(self.canonical, scale)
        self.columns = np.array([ARKIT_NAMES.index(n) for n in FROM_LANDMARKS])
        self.blended = np.array([ARKIT_NAMES.index(n) for n in BLENDED])
        self.fit_index = np.flatnonzero(self.spread < FIT_SPREAD)
        self.fit_sigma = np.sqrt(self.spread[self.fit_index] ** 2 + FIT_SIGMA**2)

    @classmethod
    def load(cls, scale: float, path=None):
        from ..model import checkpoint
        from ..paths import checkpoint_dir

        path = path or checkpoint_dir() / "face_landmarks.pt"
        if not available():
            warn("colour landmarks: off, MediaPipe is not installed (pip install "
                 "'dphm[landmarks]'); tracking runs on depth only")  # fmt: skip
            return None
        if not os.path.isfile(path):
            warn(f"colour landmarks: off, {path} not found; tracking runs on depth only")
            return None
        content = checkpoint.load(path, "face_landmarks")
        if content.get("features") != FEATURE_KIND:
            warn(f"colour landmarks: off, {path} reads other features than this version "
                 "(dphm train landmarks); tracking runs on depth only")  # fmt: skip
            return None
        return cls(content, scale)

    def arkit(self, face: FaceLandmarks, depth: np.ndarray) -> np.ndarray:
        """(52,) weights: ``depth``'s (the expression code's map) with those the landmarks
        read better taken or averaged from one frame's landmarks."""
        x = features(face.shape, self.canonical)
        w = np.clip(apply_ridge(x, self.W, self.mean, self.std)[0], 0, 1)
        out = np.array(depth, np.float32)
        out[self.columns] = w[self.columns]
        out[self.blended] = (out[self.blended] + w[self.blended]) / 2
        return out

    def start_pose(self, face: FaceLandmarks):
        """(R, t) of the head (x_cam = SCALE R x_can + t) from the landmarks' alignment."""
        _, R, _ = face.pose
        steady = [i for i in STEADY if face.ok[i]]
        c = self.canonical[steady].mean(0)
        return R, face.points[steady].mean(0) - self.landmarker.scale * R @ c

    def targets(self, model, z_id, faces, states, steps: int = 3) -> np.ndarray:
        """(478, 3) canonical places of the landmarks on this performer's head: the
        median, over keyframes with a face, of their landmarks moved into canonical space
        by the keyframe's fitted pose and expression (MediaPipe sits on a real face where
        it sits, not where it sat on the training renders), the embedding where no
        keyframe saw one; each moved onto the identity's surface by Newton steps."""
        import torch

        s = self.landmarker.scale
        x = self.canonical.copy()
        rows = []
        z = torch.as_tensor(z_id, dtype=torch.float32)[None]
        for face, st in zip(faces, states, strict=True):
            if face is None:
                continue
            with torch.no_grad():
                cond = model.condition(z, torch.as_tensor(st.z_exp, dtype=torch.float32)[None])
                p = torch.as_tensor((face.points - st.t) @ st.R / s, dtype=torch.float32)
                y = (p + model.deform(p, cond)).double().numpy()
            rows.append(np.where(face.ok[:, None], y, np.nan))
        if rows:
            with warnings.catch_warnings():  # landmarks no keyframe lifted
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(np.stack(rows), 0)
            x = np.where(np.isfinite(med), med, x)
        cond = model.identity.condition(z)
        xt = torch.as_tensor(x, dtype=torch.float32)
        for _ in range(steps):
            xt.requires_grad_(True)
            f = model.identity(xt, cond)
            (g,) = torch.autograd.grad(f.sum(), xt)
            xt = (xt - f[:, None] * g / (g * g).sum(1, keepdim=True).clamp(min=1e-6)).detach()
        return xt.double().numpy()

    def fit_landmarks(self, face: FaceLandmarks):
        """(points (M, 3) camera metres, embedding index (M,), spread (M,) metres) of the
        landmarks the fit uses."""
        keep = face.ok[self.fit_index]
        return face.points[self.fit_index[keep]], self.fit_index[keep], self.fit_sigma[keep]
