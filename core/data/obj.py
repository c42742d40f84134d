"""Minimal Wavefront OBJ reading and writing (positions and polygon faces)."""

import os
from pathlib import Path

import numpy as np

from ..errors import DPHMError


def read_obj(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Return vertices (N, 3) float32 and faces (F, 4) int32, -1 padding triangles."""
    path = Path(path)
    verts, faces = [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    if line.startswith("v "):
                        verts.append([float(x) for x in line.split()[1:4]])
                        if len(verts[-1]) != 3:
                            raise ValueError("a vertex needs x y z")
                    elif line.startswith("f "):
                        idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                        if len(idx) < 3:
                            raise ValueError("a face needs 3 or more vertices")
                        if len(idx) > 4:  # fan-triangulate n-gons
                            for k in range(1, len(idx) - 1):
                                faces.append([idx[0], idx[k], idx[k + 1], 0])
                            continue
                        faces.append(idx + [0] * (4 - len(idx)))
                except ValueError as e:
                    raise DPHMError(f"{path}: line {n} is not a valid OBJ line ({e})") from e
    except OSError as e:
        raise DPHMError(f"{path}: cannot read OBJ ({e.strerror})") from e
    if not verts:
        raise DPHMError(f"{path}: no vertices in OBJ file")
    v = np.asarray(verts, dtype=np.float32)
    if not np.isfinite(v).all():
        raise DPHMError(f"{path}: OBJ vertices hold NaN or infinite coordinates")
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 4)
    nv = len(v)
    f = np.where(f > 0, f - 1, np.where(f < 0, nv + f, -1))  # 1-based and negative indices
    if (f[:, :3] < 0).any() or (f >= nv).any():
        raise DPHMError(f"{path}: OBJ faces index vertices that do not exist")
    return v, f.astype(np.int32)


def triangulate(faces: np.ndarray) -> np.ndarray:
    """Split (F, 4) quads/triangles (-1 padded) into (T, 3) triangles."""
    faces = np.asarray(faces)
    if faces.shape[1] == 3:
        return faces.astype(np.int64)
    quad = faces[:, 3] >= 0
    tris = [faces[:, :3], faces[quad][:, [0, 2, 3]]]
    return np.concatenate(tris).astype(np.int64)


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write an OBJ atomically; faces are 0-based (F, 3) or (F, 4) with -1 padding."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    lines = ["# written by dphm\n"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in np.asarray(vertices, dtype=np.float64)]
    for f in np.asarray(faces):
        idx = [str(i + 1) for i in f if i >= 0]
        lines.append("f " + " ".join(idx) + "\n")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    os.replace(tmp, path)
