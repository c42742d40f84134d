"""What a take turns into: posed meshes, a PC2 point cache, a Live Link Face CSV.

Meshes share one topology: the identity's canonical surface is meshed once and every
frame poses its vertices by inverting the expression deformation (warm started from the
previous frame), then applies the take's similarity canonical -> camera (or not, for
``space="canonical"``, which stays in model units).
"""

import os
import struct
from pathlib import Path

import numpy as np

from ..data.arkit import ARKIT_NAMES
from ..geometry.io import write_obj

LIVE_LINK_EXTRA = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip


def identity_mesh(model, take, resolution=128):
    """(vertices (V, 3) canonical units, faces (F, 3)): the take's identity (refined where
    the take holds a refinement), its largest component."""
    from ..geometry.meshing import largest_component, mesh_sdf
    from .take import refinement

    fn = model.sdf_fn(take["z_id"], refinement=refinement(take))
    return largest_component(*mesh_sdf(fn, resolution=resolution))


def pose_vertices(model, take, v, space="camera"):
    """Generator of (T) arrays (V, 3): canonical vertices ``v`` posed by every frame's
    expression (the deformation inverted, warm started from the previous frame), in camera
    space or, for ``space="canonical"``, in model units."""
    import torch

    from ..geometry.inverse import invert_deformation

    z_id = torch.as_tensor(take["z_id"], dtype=torch.float32).view(1, -1)
    prev = None
    for i, z in enumerate(take["z_exp"]):
        with torch.no_grad():
            cond = model.condition(z_id, torch.as_tensor(z, dtype=torch.float32).view(1, -1))
        prev, _ = invert_deformation(model, cond, v, init=prev, strict=False)
        if space == "camera":
            yield take["s"][i] * prev @ take["R"][i].T + take["t"][i]
        else:
            yield prev.copy()


def posed_meshes(model, take, resolution=128, space="camera"):
    """(faces (F, 3), generator of (T) vertex arrays (V, 3)) for the take's frames."""
    v, f = identity_mesh(model, take, resolution)
    return f, pose_vertices(model, take, v, space)


def write_obj_sequence(folder, faces, frames) -> int:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, v in enumerate(frames):
        write_obj(folder / f"{i:06d}.obj", v, faces)
        n += 1
    return n


def write_pc2(path, frames, fps=30.0, start=0.0) -> int:
    """Blender/3ds Max point cache: header 'POINTCACHE2\\0', version 1, point count, start
    frame, sample rate, sample count; then float32 xyz per point per sample."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    n = 0
    with open(tmp, "wb") as fh:
        fh.write(b"\0" * 32)
        for v in frames:
            fh.write(np.asarray(v, "<f4").tobytes())
            count = len(v)
            n += 1
        fh.seek(0)
        fh.write(struct.pack("<12siiffi", b"POINTCACHE2\0", 1, count if n else 0, start, 1.0, n))
    os.replace(tmp, path)
    return n


def read_pc2(path) -> np.ndarray:
    """(samples, points, 3) float32 of a PC2 file."""
    data = Path(path).read_bytes()
    sig, _, points, _, _, samples = struct.unpack("<12siiffi", data[:32])
    if sig != b"POINTCACHE2\0":
        raise ValueError(f"{path}: not a PC2 file")
    return np.frombuffer(data[32:], "<f4").reshape(samples, points, 3)


def _timecode(seconds: float, fps: float) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    frame = (s % 1) * fps
    return f"{int(h):02d}:{int(m):02d}:{int(s):02d}:{int(frame):02d}.{int(frame % 1 * 1000):03d}"


def write_arkit_csv(path, take, fps=30.0) -> int:
    """Live Link Face CSV: Timecode, BlendShapeCount, the 52 weights (capitalised names in
    Apple's order), head yaw/pitch/roll (radians, from the take's rotation), eye angles 0."""
    from scipy.spatial.transform import Rotation

    from ..capture.simulate import ICT_TO_CAMERA

    names = [n[0].upper() + n[1:] for n in ARKIT_NAMES]
    lines = [",".join(["Timecode", "BlendShapeCount", *names, *LIVE_LINK_EXTRA])]
    t0 = float(take["timestamps"][0]) if len(take["timestamps"]) else 0.0
    for ts, w, R in zip(take["timestamps"], take["arkit"], take["R"], strict=True):
        # head rotation relative to facing the camera, as yaw (y), pitch (x), roll (z)
        yaw, pitch, roll = Rotation.from_matrix(R @ ICT_TO_CAMERA).as_euler("YXZ")
        head = [-yaw, pitch, roll] + [0.0] * 6
        lines.append(
            ",".join(
                [
                    _timecode(float(ts) - t0, fps),
                    str(len(names) + 9),
                    *(f"{x:.6f}" for x in w),
                    *(f"{x:.6f}" for x in head),
                ]
            )
        )
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return len(lines) - 1


def read_arkit_csv(path, fps=30.0) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (T,) seconds from the first row, weights (T, 52) in Apple's order) of a
    Live Link Face CSV; columns are found by name (any case), other columns are ignored.
    ``fps`` is the frame rate of the timecodes' frame field (HH:MM:SS:FF.fff)."""
    from ..errors import DPHMError

    path = Path(path)
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DPHMError(f"{path}: cannot read Live Link Face CSV ({e})") from e
    if len(lines) < 2:
        raise DPHMError(f"{path}: no rows in Live Link Face CSV")
    header = [h.strip().lower() for h in lines[0].split(",")]
    missing = [n for n in ("Timecode", *ARKIT_NAMES) if n.lower() not in header]
    if missing:
        raise DPHMError(f"{path}: Live Link Face CSV lacks column(s) {', '.join(missing)}")
    cols = [header.index(n.lower()) for n in ARKIT_NAMES]
    tc = header.index("timecode")
    stamps, weights = [], []
    for i, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        try:
            h, m, s, frame = cells[tc].strip().split(":")
            stamps.append(int(h) * 3600 + int(m) * 60 + int(s) + float(frame) / fps)
            weights.append([float(cells[c]) for c in cols])
        except (ValueError, IndexError) as e:
            raise DPHMError(f"{path}: line {i}: bad timecode or weight ({e})") from e
    stamps = np.asarray(stamps, np.float64)
    return stamps - stamps[0], np.asarray(weights, np.float32)
