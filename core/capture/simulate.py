"""A simulated Azure Kinect: depth of an animated ICT-FaceKit head with ground truth.

The head is placed in OpenCV camera space by ``place``: ICT's frame (x to the head's left,
y up, z out of the face) is turned by ``ICT_TO_CAMERA`` = diag(1, -1, -1) so the face looks
at the camera, then moved by a smooth seeded trajectory (``head_motion``) that keeps the
face centre 0.5 to 0.8 m away. Per frame the similarity canonical (ICT metres) -> camera is
x_cam = s R x_ict + t with s = 1. Depth is rendered at Azure Kinect NFOV unbinned
intrinsics and corrupted by ``noise.kinect_noise``.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.arkit import ARKIT_NAMES, arkit_to_ict_matrix
from ..data.ict import NARROW_FACE, ICTFaceKit
from ..errors import DPHMError
from .frame import DepthFrame, Intrinsics
from .noise import kinect_noise
from .raster import rasterize

# Nominal NFOV unbinned depth intrinsics (principal point at the image centre, no distortion).
KINECT_NFOV = Intrinsics(504.0, 504.0, 319.5, 287.5, 640, 576)
ICT_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
DISTANCE = (0.5, 0.8)


def place(vertices_ict: np.ndarray, R: np.ndarray, t: np.ndarray, s: float = 1.0) -> np.ndarray:
    """Camera-space vertices s R x + t of ICT-space vertices (metres)."""
    return (s * vertices_ict) @ np.asarray(R).T + np.asarray(t)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-frame rotation: yaw about -y (up), pitch about x, roll about z (radians)."""
    cy, sy, cp, sp, cr, sr = (
        math.cos(yaw),
        math.sin(yaw),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(roll),
        math.sin(roll),
    )
    Ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    Rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def head_motion(
    n: int,
    fps: float,
    pivot: np.ndarray,
    seed: int,
    kind: str = "normal",
    roll: float = 0.0,
    yaw: float = 0.0,
    distance: float | None = None,
):
    """(R (n, 3, 3), t (n, 3)): ICT -> camera poses along a smooth seeded trajectory.

    ``kind`` "normal" sways slowly (about 10 degrees, 1-2 cm), "fast" turns quickly and
    widely (about 25 degrees at around 1 Hz), "none" holds the head still facing the camera.
    The ICT point ``pivot`` (the face centre) stays 0.5 to 0.8 m from the camera, or within
    2 cm of ``distance``. ``roll`` (degrees about the viewing axis: a phone held sideways is
    90) and ``yaw`` (degrees, 90 is a profile) offset the whole trajectory.
    """
    rng = np.random.default_rng([seed, 1])
    amp = {
        "none": (0, 0, 0, 0, 0),
        "normal": (12, 7, 4, 0.015, 0.03),
        "fast": (28, 15, 8, 0.03, 0.06),
    }[kind]
    freq = (0.8, 1.6) if kind == "fast" else (0.08, 0.3)
    time = np.arange(n) / fps

    def wave():
        f = rng.uniform(*freq, 2)
        ph = rng.uniform(0, 2 * np.pi, 2)
        return 0.7 * np.sin(2 * np.pi * f[0] * time + ph[0]) + 0.3 * np.sin(
            2 * np.pi * f[1] * time + ph[1]
        )

    d0 = rng.uniform(0.58, 0.72)
    lo, hi = DISTANCE if distance is None else (distance - 0.04, distance + 0.04)
    d0 = d0 if distance is None else distance
    yaws, pitch, rolls = (np.deg2rad(a) * wave() for a in amp[:3])
    yaws, rolls = yaws + math.radians(yaw), rolls + math.radians(roll)
    tx, ty, tz = amp[3] * wave(), amp[3] * wave(), d0 + amp[4] * wave()
    tz = np.clip(tz, lo + 0.02, hi - 0.02)
    R = np.stack(
        [_rotation(a, b, c) @ ICT_TO_CAMERA for a, b, c in zip(yaws, pitch, rolls, strict=True)]
    )
    t = np.stack([tx, ty, tz], 1) - R @ pivot
    return R, t


# Volumes that come with real heads, in ICT metres (x left, y up, z out of the face): an
# ellipsoid torso with shoulders under the neck (which ends at y = -0.19), and hair as a
# shell 1-2 cm off the skull over the crown and the back (the face is left bare).
TORSO = ((0.0, -0.40, -0.05), (0.21, 0.23, 0.12))
HAIR = ((0.0, 0.025, -0.01), (0.108, 0.138, 0.128))


def ellipsoid(centre, radii, n_lat=24, n_lon=48):
    """(vertices, triangles) of an ellipsoid, wound like ICT's skin (outward)."""
    lat = np.linspace(0, np.pi, n_lat + 1)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    unit = np.stack([np.sin(la) * np.cos(lo), np.cos(la), np.sin(la) * np.sin(lo)], -1)
    v = (unit * np.asarray(radii) + np.asarray(centre)).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    tri = np.concatenate([np.stack([a, b, c], -1), np.stack([b, d, c], -1)]).reshape(-1, 3)
    return v.astype(np.float32), tri


HAIR_PART, TORSO_PART, HAND_PART, PROP_PART = 4, 5, 6, 7  # ``shading`` paints by part
# occluders (ellipsoids, ICT metres): a palm under the jaw and against the cheek (chin on
# hand), a handheld microphone's ball and handle 3-4 cm before the chin
OCCLUDERS = {
    "hand": [(((0.063, -0.065, 0.085), (0.018, 0.085, 0.05)), HAND_PART)],
    "microphone": [(((0.0, -0.075, 0.16), (0.025, 0.025, 0.025)), PROP_PART),
                   (((0.0, -0.15, 0.18), (0.015, 0.07, 0.015)), PROP_PART)],
}  # fmt: skip


def extras(body: bool, hair: bool, occluder: str | None = None):
    """(vertices, triangles, part of each triangle) in ICT metres of the torso, hair and
    occluder asked for (may be empty)."""
    if occluder is not None and occluder not in OCCLUDERS:
        raise DPHMError(f"unknown occluder {occluder!r} ({', '.join(OCCLUDERS)})")
    parts = []
    if body:
        parts.append((*ellipsoid(*TORSO), TORSO_PART))
    if hair:
        v, t = ellipsoid(*HAIR)
        keep = (v[:, 1] > 0.07) | (v[:, 2] < -0.02)  # crown and back, never the face
        t = t[keep[t].all(1)]
        parts.append((v, t, HAIR_PART))
    for shape, part in OCCLUDERS.get(occluder, []):
        parts.append((*ellipsoid(*shape, n_lat=16, n_lon=32), part))
    verts, tris, kinds, n = [], [], [], 0
    for v, t, kind in parts:
        verts.append(v)
        tris.append(t + n)
        kinds.append(np.full(len(t), kind))
        n += len(v)
    if not parts:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64), np.zeros(0, int)
    return np.concatenate(verts), np.concatenate(tris), np.concatenate(kinds)


@dataclass
class SimFrame:
    frame: DepthFrame
    clean: np.ndarray | None  # (H, W) noiseless depth, metres
    ir: np.ndarray | None  # (H, W) uint16 simulated active IR
    vertices: np.ndarray | None  # (N, 3) camera space, metres
    R: np.ndarray
    t: np.ndarray
    arkit: np.ndarray


class HeadSimulator:
    """Renders an ICT-FaceKit identity (weights ~ N(0, 1), seeded) performing ARKit weights,
    or ``mesh`` (vertices, triangles in ICT's frame and metres: ``ood_heads``), held still
    in its own expression."""

    def __init__(
        self,
        ict: ICTFaceKit,
        identity_seed: int = 0,
        intrinsics=KINECT_NFOV,
        noise: str = "kinect",
        noise_scale: float = 1.0,
        dropout: float = 0.0,
        seed: int = 0,
        profile=None,
        body: bool = False,
        hair: bool = False,
        color: bool = False,
        occluder: str | None = None,
        mesh=None,
    ):
        if noise not in ("kinect", "none"):
            raise DPHMError(f"unknown noise model {noise!r} (kinect or none)")
        if mesh is not None and color:
            raise DPHMError("the colour stream paints ICT's UVs: a head mesh renders depth only")
        self.ict = ict
        self.identity_seed = identity_seed
        rng = np.random.default_rng(identity_seed)
        self.identity = rng.standard_normal(len(ict.identity_names)).astype(np.float32)
        self.base = ict.head(self.identity)
        self.deltas = ict.expression_deltas.reshape(len(ict.expression_names), -1)
        self.arkit_to_ict = arkit_to_ict_matrix(ict.expression_names)
        self.triangles = ict.skin_triangles
        self.pivot = self.base[NARROW_FACE[0] : NARROW_FACE[1]].mean(0)
        if mesh is not None:
            self.base, self.triangles = np.asarray(mesh[0], np.float32), np.asarray(mesh[1])
            self.deltas, self.pivot = None, self.base.mean(0)
        self.profile = profile  # a profiles.CameraProfile: its intrinsics, range and noise
        # torso, hair and occluders move with the head (a real torso turns less); the ground
        # truth is the head alone
        self.extra_vertices, extra_tris, extra_parts = extras(body, hair, occluder)
        self.extra_triangles = extra_tris + len(self.base)
        self.intrinsics = profile.intrinsics if profile is not None else intrinsics
        self.noise, self.noise_scale, self.dropout, self.seed = noise, noise_scale, dropout, seed
        self.color = None
        if color:  # the colour camera: the profile's, or the Azure Kinect's 720p
            from .profiles import DEFAULT, get_profile
            from .shading import ColorRenderer

            cam = profile or get_profile(DEFAULT)
            self.color = ColorRenderer(
                ict, cam.color_intrinsics, cam.depth_to_color, self.extra_triangles,
                extra_parts, identity_seed,
            )  # fmt: skip

    def vertices(self, arkit: np.ndarray) -> np.ndarray:
        """ICT-space head (N, 3) for 52 ARKit weights."""
        if self.deltas is None:
            return self.base
        w = self.arkit_to_ict @ np.asarray(arkit, np.float32)
        return self.base + (w @ self.deltas).reshape(-1, 3)

    def frame(
        self, index: int, arkit: np.ndarray, R: np.ndarray, t: np.ndarray, fps: float = 30.0
    ) -> SimFrame:
        v = place(self.vertices(arkit), R, t)
        extra = place(self.extra_vertices, R, t)
        if len(extra):
            scene = np.concatenate([v, extra])
            tris = np.concatenate([self.triangles, self.extra_triangles])
        else:
            scene, tris = v, self.triangles
        clean, _, cos = rasterize(scene, tris, self.intrinsics, cull_back=True)
        rng = np.random.default_rng([self.seed, index, 2])
        if self.noise == "kinect":
            depth = kinect_noise(clean, cos, rng, self.dropout, self.noise_scale, self.profile)
        else:
            depth = np.round(clean * 1000).astype(np.float32) / np.float32(1000)
        ir = np.zeros(depth.shape, np.float32)  # active IR: albedo * cos / z^2
        hit = depth > 0
        ir[hit] = 1200 * cos[hit] * (0.6 / clean[hit]) ** 2
        frame = DepthFrame(depth, self.intrinsics, index / fps, index)
        if self.color is not None:
            frame.color = self.color.render(v, extra, index)
            frame.color_intrinsics, frame.depth_to_color = self.color.intr, self.color.T
        return SimFrame(
            frame,
            clean,
            np.clip(ir, 0, 65535).astype(np.uint16),
            v,
            R,
            t,
            np.asarray(arkit, np.float32),
        )


def expression_track(sequence: str | None, arkit_csv, frames: int | None, fps: float):
    """(T, 52) ARKit weights from a named sequence or a Live Link Face style CSV."""
    from . import sequences

    if arkit_csv is not None:
        times, weights = sequences.load_arkit_csv(arkit_csv)
        n = frames if frames is not None else (
            int(round((times[-1] - times[0]) * fps)) + 1 if times is not None else len(weights)
        )
        return sequences.resample(times, weights, n, fps)
    seq = sequences.load(sequence or "talking")
    n = frames if frames is not None else int(math.ceil(seq["duration"] * fps))
    return sequences.sample(seq, n, fps)


class GroundTruthWriter:
    """ground_truth/: per-frame OBJ in camera space, arkit.csv, identity.json, pose.npz."""

    def __init__(self, folder, faces: np.ndarray, meshes: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.meshes = meshes
        self.rows: list[SimFrame] = []
        self._faces = "".join(
            "f " + " ".join(str(i + 1) for i in face if i >= 0) + "\n" for face in np.asarray(faces)
        )

    def write(self, f: SimFrame) -> None:
        if self.meshes:  # the format of data.obj.write_obj, formatted in one go
            v = np.asarray(f.vertices, np.float64)
            text = "# written by dphm\n" + ("v %.6f %.6f %.6f\n" * len(v)) % tuple(v.ravel())
            path = self.folder / f"{f.frame.index:06d}.obj"
            tmp = path.with_name(path.name + ".partial")
            tmp.write_text(text + self._faces)
            os.replace(tmp, path)
        self.rows.append(SimFrame(f.frame, None, None, None, f.R, f.t, f.arkit))

    def close(self, info: dict) -> None:
        rows = self.rows
        lines = ["frame,time," + ",".join(ARKIT_NAMES)]
        lines += [
            f"{f.frame.index},{f.frame.timestamp:.6f}," + ",".join(f"{x:.5f}" for x in f.arkit)
            for f in rows
        ]
        (self.folder / "arkit.csv").write_text("\n".join(lines) + "\n")
        (self.folder / "identity.json").write_text(json.dumps(info, indent=1))
        np.savez(
            self.folder / "pose.npz",
            R=np.stack([f.R for f in rows]),
            t=np.stack([f.t for f in rows]),
            s=np.ones(len(rows)),
            timestamps=np.array([f.frame.timestamp for f in rows]),
            convention="x_cam = s * R @ x_ict + t; ICT metres (x left, y up, z out of "
            "face); camera OpenCV (x right, y down, z forward)",
        )


def simulate(
    out,
    ict: ICTFaceKit,
    arkit: np.ndarray,
    identity_seed: int = 0,
    seed: int = 0,
    fps: float = 30.0,
    motion: str = "normal",
    meshes: bool = True,
    progress=None,
    camera: str | None = None,
    roll: float = 0.0,
    yaw: float = 0.0,
    distance: float | None = None,
    body: bool = False,
    hair: bool = False,
    color: bool = False,
    occluder: str | None = None,
    head_mesh=None,
    **noise,
) -> Path:
    """Write a simulated take to ``out``: a capture folder, or an Azure Kinect ``.mkv`` with
    ``<stem>_ground_truth/`` beside it. Returns the ground truth folder. ``camera`` names a
    ``profiles`` entry (default: the Azure Kinect); ``roll``, ``yaw`` and ``distance`` as in
    ``head_motion``; ``body`` and ``hair`` add a torso and a hair volume to what the camera
    sees (not to the ground truth), ``occluder`` a hand or a microphone (``OCCLUDERS``);
    ``color`` adds the colour stream (``shading``) with its calibration, as the camera's own
    recording has it; ``head_mesh`` renders that OBJ head (``ood_heads.read_head_mesh``)
    instead of an ICT identity, still in its own expression."""
    from . import k4a_calibration
    from .folder import FolderWriter
    from .mkv_write import KinectWriter
    from .profiles import get_profile

    out = Path(out)
    profile = get_profile(camera) if camera else None
    mesh = None
    if head_mesh is not None:
        from ..data.ood_heads import read_head_mesh

        mesh = read_head_mesh(head_mesh, ict)[:2]
    sim = HeadSimulator(ict, identity_seed, seed=seed, profile=profile, body=body, hair=hair,
                        color=color, occluder=occluder, mesh=mesh, **noise)  # fmt: skip
    R, t = head_motion(len(arkit), fps, sim.pivot, seed, motion, roll, yaw, distance)
    if out.suffix.lower() == ".mkv":
        if profile is not None and profile.name not in ("azure_nfov", "azure_wfov"):
            raise DPHMError(f"{out}: only Azure Kinect profiles are written as .mkv; "
                            "give a folder for other cameras")  # fmt: skip
        gt = out.with_name(out.stem + "_ground_truth")
        writer = KinectWriter(out, k4a_calibration.synthetic(sim.intrinsics), sim.intrinsics,
                              fps, seed=seed, color="720P" if color else None)  # fmt: skip

        def put(f):
            depth = np.round(f.frame.depth * 1000).astype(np.uint16)
            writer.write(depth, f.ir, jpeg=_jpeg(f.frame.color) if color else None)
    else:
        gt = out / "ground_truth"
        writer = FolderWriter(out, sim.intrinsics, fps)
        put = lambda f: writer.write(f.frame)  # noqa: E731
    truth = GroundTruthWriter(gt, ict.faces if mesh is None else mesh[1], meshes)
    try:
        for i, w in enumerate(arkit):
            f = sim.frame(i, w, R[i], t[i], fps)
            put(f)
            truth.write(f)
            if progress:
                progress(1)
    finally:
        writer.close()
    truth.close(
        {
            "identity_weights": sim.identity.tolist(),
            "identity_seed": identity_seed,
            "seed": seed,
            "motion": motion,
            "fps": fps,
            "ict": ict.source,
            "noise": {"model": sim.noise, "scale": sim.noise_scale, "dropout": sim.dropout},
            "camera": profile.name if profile else "azure_nfov",
            "roll": roll,
            "yaw": yaw,
            "distance": distance,
            "body": body,
            "hair": hair,
            "color": color,
            "occluder": occluder,
            "head_mesh": None if head_mesh is None else str(head_mesh),
        }
    )
    return gt


def _jpeg(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()
