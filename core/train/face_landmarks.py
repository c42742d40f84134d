"""``dphm train landmarks``: where MediaPipe's landmarks sit on the head, and what they say
of the ARKit weights that depth barely sees (eyelids, brows, irises, lips).

Simulated colour frames of training identities (never the held-out ones) under random
poses, rolls and camera profiles go through ``tracking.face_landmarks`` as a capture would.

1. Embedding: on neutral faces each landmark's pixel is cast onto the rendered surface (the
   colour raster's triangle and barycentrics) and read as a position on ICT's generic
   neutral head; the mean over frames, in canonical units, is the landmark's place on the
   model's mean head, and the spread of the samples (mm) how well MediaPipe holds it
   (silhouette points slide with the pose; inner ones do not).
2. ARKit: on frames with random ARKit weights (``random_arkit``) the landmarks are found as tracking
   finds them (lifted through the noisy depth and checked against the embedding);
   MediaPipe's own 3D face is aligned to the embedding by a similarity on steady points
   (nose, forehead, eye corners: no pose from the tracker needed), and a ridge regression
   from the offsets of eye, brow, iris and lip points to the 52 weights is fitted.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..capture.profiles import get_profile
from ..capture.simulate import ICT_TO_CAMERA, HeadSimulator, _rotation, place
from ..data import corpus
from ..data.arkit import ARKIT_NAMES
from ..data.ict import load_ict
from ..errors import DPHMError
from ..model import checkpoint
from ..tracking import face_landmarks as fl
from ..tracking.preprocess import segment_head

CAMERAS = ("azure_nfov", "femto_bolt", "realsense_d435", "truedepth_640", "kinect_v1")
ROLLS = (0, 0, 0, 15, -15, 90, -90, 180)


@dataclass(frozen=True)
class Preset:
    identities: int
    neutral_frames: int
    frames: int
    ridge: float = 3e-2
    seed: int = 0


PRESETS = {
    "tiny": Preset(identities=3, neutral_frames=8, frames=60),
    "default": Preset(identities=40, neutral_frames=160, frames=2400),
}


def _set(w, names, value):
    for n in names:
        w[ARKIT_NAMES.index(n)] = value


def _pair(rng, w, stem, value, wink=0.2):
    """``stem`` Left and Right at about ``value``, or one side only (a wink, a one-sided
    smile) with probability ``wink``."""
    sides = ["Left", "Right"] if rng.random() > wink else [("Left", "Right")[rng.integers(2)]]
    for side in sides:
        w[ARKIT_NAMES.index(stem + side)] = np.clip(value + rng.normal(0, 0.08), 0, 1)


def random_arkit(rng) -> np.ndarray:
    """ARKit weights as faces make them: per region at most one of the shapes that oppose
    each other (a lid cannot blink and widen at once, a brow rise and fall), sides mostly
    together, a few other shapes on at random."""
    w = np.zeros(len(ARKIT_NAMES), np.float32)
    v = lambda lo=0.15: rng.uniform(lo, 1.0)  # noqa: E731
    lid = rng.choice(["eyeBlink", "eyeSquint", "eyeWide", ""], p=[0.3, 0.15, 0.15, 0.4])
    if lid:
        _pair(rng, w, lid, v())
    gaze = rng.choice(["down", "up", "left", "right", ""], p=[0.1, 0.1, 0.1, 0.1, 0.6])
    g = rng.uniform(0.15, 0.8)
    if gaze in ("down", "up"):
        _set(w, [f"eyeLook{gaze.title()}Left", f"eyeLook{gaze.title()}Right"], g)
    elif gaze:  # the subject's left: the left eye looks out, the right eye in
        out, inn = ("Left", "Right") if gaze == "left" else ("Right", "Left")
        _set(w, [f"eyeLookOut{out}", f"eyeLookIn{inn}"], g)
    brow = rng.choice(["inner", "raise", "down", ""], p=[0.2, 0.15, 0.2, 0.45])
    if brow in ("inner", "raise"):
        _set(w, ["browInnerUp"], v())
    if brow == "raise":
        _pair(rng, w, "browOuterUp", v())
    if brow == "down":
        _pair(rng, w, "browDown", v())
    if rng.random() < 0.3:
        _set(w, ["jawOpen"], v(0.1))
    mouth = rng.choice(["mouthSmile", "mouthFrown", "mouthStretch", "mouthPress",
                        "mouthPucker", "mouthFunnel", ""], p=[0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3])
    if mouth in ("mouthPucker", "mouthFunnel"):
        _set(w, [mouth], v())
    elif mouth:
        _pair(rng, w, mouth, v())
    if mouth == "mouthSmile" and rng.random() < 0.5:
        _pair(rng, w, "cheekSquint", v())
    rest = [i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("mouth", "nose", "cheek",
                                                                   "jaw")) and w[i] == 0]
    for i in rng.choice(rest, size=rng.integers(0, 3), replace=False):
        w[i] = rng.uniform(0.1, 0.6)
    return w


def view(ict, rng, identity, arkit):
    """(simulator, SimFrame) of one random view of an identity wearing ``arkit``."""
    cam = get_profile(CAMERAS[rng.integers(len(CAMERAS))])
    sim = HeadSimulator(ict, seed=int(rng.integers(1 << 30)), profile=cam, color=True,
                        body=rng.random() < 0.5, hair=rng.random() < 0.5)  # fmt: skip
    sim.identity, sim.base = identity, ict.head(identity)
    lo = max(cam.range[0], 0.22) + 0.05
    d = rng.uniform(lo, max(lo + 0.05, min(cam.range[0] + 0.4, 1.0)))
    yaw, pitch = np.deg2rad(rng.uniform(-40, 40)), np.deg2rad(rng.uniform(-15, 15))
    roll = np.deg2rad(ROLLS[rng.integers(len(ROLLS))] + rng.normal(0, 5))
    R = _rotation(yaw, pitch, roll) @ ICT_TO_CAMERA
    t = np.array([rng.normal(0, 0.02), rng.normal(0, 0.02), d]) - R @ sim.pivot
    return sim, sim.frame(int(rng.integers(1 << 20)), arkit, R, t)


def detect(mesh, f):
    """(478, 2) pixels of the landmarks found in a SimFrame with its true up; None when
    no face."""
    obs = segment_head(f.frame, max_points=4000, seed=f.frame.index)
    if not obs.found:
        return None
    return mesh.find(f.frame, obs.points, [fl.up_direction(f.R, f.frame)])


def embed(ict, ids, mesh, preset, rng, progress):
    samples = []
    for k in range(preset.neutral_frames):
        sim, f = view(ict, rng, ids[k % len(ids)], np.zeros(len(ARKIT_NAMES), np.float32))
        uv = detect(mesh, f)
        progress()
        if uv is None:
            continue
        pos, ok = sim.color.neutral_at(f.vertices, place(sim.extra_vertices, f.R, f.t), uv)
        samples.append(np.where(ok[:, None], pos, np.nan))
    if len(samples) < 3:
        raise DPHMError(f"MediaPipe found the face on {len(samples)} neutral frames: too few")
    s = np.stack(samples)
    mean = np.nanmean(s, 0)
    spread = np.sqrt(np.nanmean(((s - mean) ** 2).sum(-1), 0))
    return corpus.to_canonical(mean), spread, len(samples)


def regress(ict, ids, landmarker, canonical, preset, rng, progress):
    """Features as tracking reads them: the landmarker's orientation search and check."""
    x, y = [], []
    for k in range(preset.frames):
        w = random_arkit(rng)
        _, f = view(ict, rng, ids[k % len(ids)], w)
        obs = segment_head(f.frame, max_points=4000, seed=f.frame.index)
        found = landmarker.observe(f.frame, obs.points) if obs.found else None
        progress()
        if found is None:
            continue
        x.append(fl.features(found.shape, canonical))
        y.append(w)
    x, y = np.stack(x), np.stack(y)
    n_val = max(1, len(x) // 10)
    W, mean, std = fl.ridge(x[n_val:], y[n_val:], preset.ridge)
    pred = np.clip(fl.apply_ridge(x[:n_val], W, mean, std), 0, 1)
    mae = np.abs(pred - y[:n_val]).mean(0)
    return W, mean, std, len(x), {n: float(m) for n, m in zip(ARKIT_NAMES, mae, strict=True)}


def train_face_landmarks(preset_name: str, out, quiet: bool = False) -> dict:
    preset = PRESETS[preset_name]
    t0 = time.time()
    ict = load_ict()
    mesh = fl.FaceMesh()
    rng = np.random.default_rng(preset.seed)
    ids = corpus.identity_weights("train", preset.identities, len(ict.identity_deltas))
    total = preset.neutral_frames + preset.frames
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="landmarks", unit="frame")
    progress = bar.update if bar else (lambda: None)
    try:
        canonical, spread, n_neutral = embed(ict, ids, mesh, preset, rng, progress)
        landmarker = fl.Landmarker(canonical, corpus.CANONICAL_SCALE, mesh)
        W, mean, std, n_frames, val_mae = regress(ict, ids, landmarker, canonical, preset,
                                                  rng, progress)  # fmt: skip
    finally:
        mesh.close()
        if bar:
            bar.close()
    notes = {
        "preset": preset_name,
        "preset_values": asdict(preset),
        "neutral_frames_found": n_neutral,
        "frames_found": n_frames,
        "validation_mae": val_mae,
        "seconds": time.time() - t0,
    }
    content = {
        "canonical": torch.as_tensor(canonical, dtype=torch.float32),
        "spread_mm": torch.as_tensor(1000 * spread, dtype=torch.float32),
        "W": torch.as_tensor(W, dtype=torch.float32),
        "mean": torch.as_tensor(mean, dtype=torch.float32),
        "std": torch.as_tensor(std, dtype=torch.float32),
        "features": fl.FEATURE_KIND,
        "notes": notes,
    }
    sha = checkpoint.save(out, "face_landmarks", content)
    return {"path": str(out), "sha256": sha, "seconds": notes["seconds"], "notes": notes}
