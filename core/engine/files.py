"""The files the engine hands to Blender: lists of meshes and point-cloud caches (``.npz``).

Numpy only (Blender's Python reads them without torch). Written atomically.

Mesh list: ``vertices`` (sum V, 3) float32 and ``faces`` (sum F, 3) int32 concatenated,
``v_offsets``/``f_offsets`` (N + 1,) where mesh i is ``vertices[v_offsets[i]:v_offsets[i+1]]``
(its faces index its own vertices), plus any extra arrays (codes, names).

Point cache: ``points`` (sum P, 3) float32 camera-space metres, ``offsets`` (T + 1,),
``timestamps`` (T,), ``intrinsics`` (JSON string), one entry per depth frame.
"""

import json
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from ..npz import load_npz, save_npz


def _load(path, keys, what) -> dict:
    data = load_npz(path, what)
    missing = [k for k in keys if k not in data]
    if missing:
        raise DPHMError(f"{path}: not a {what} (no {', '.join(missing)})")
    return data


def _offsets(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def write_meshes(path, meshes, **extra) -> Path:
    """``meshes``: a sequence of (vertices (V, 3), faces (F, 3))."""
    meshes = [
        (np.asarray(v, np.float32).reshape(-1, 3), np.asarray(f, np.int32).reshape(-1, 3))
        for v, f in meshes
    ]
    return save_npz(
        path,
        {
            "vertices": np.concatenate([v for v, _ in meshes] or [np.zeros((0, 3), np.float32)]),
            "faces": np.concatenate([f for _, f in meshes] or [np.zeros((0, 3), np.int32)]),
            "v_offsets": _offsets([len(v) for v, _ in meshes]),
            "f_offsets": _offsets([len(f) for _, f in meshes]),
            **extra,
        },
    )


def read_meshes(path) -> tuple[list, dict]:
    """([(vertices, faces), ...], the extra arrays)."""
    d = _load(path, ("vertices", "faces", "v_offsets", "f_offsets"), "mesh list")
    vo, fo = d.pop("v_offsets"), d.pop("f_offsets")
    v, f = d.pop("vertices"), d.pop("faces")
    meshes = [(v[vo[i] : vo[i + 1]], f[fo[i] : fo[i + 1]]) for i in range(len(vo) - 1)]
    return meshes, d


def write_points(path, clouds, timestamps, intrinsics: dict) -> Path:
    """``clouds``: per frame (P, 3) camera-space points."""
    clouds = [np.asarray(p, np.float32).reshape(-1, 3) for p in clouds]
    return save_npz(
        path,
        {
            "points": np.concatenate(clouds or [np.zeros((0, 3), np.float32)]),
            "offsets": _offsets([len(p) for p in clouds]),
            "timestamps": np.asarray(timestamps, np.float64),
            "intrinsics": np.array(json.dumps(intrinsics)),
        },
    )


class PointCache:
    """A point cache opened for random access by frame (``len``, ``[i]``)."""

    def __init__(self, path):
        d = _load(path, ("points", "offsets", "timestamps", "intrinsics"), "point cache")
        self.path = Path(path)
        self.points, self.offsets, self.timestamps = d["points"], d["offsets"], d["timestamps"]
        self.intrinsics = json.loads(str(d["intrinsics"]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.points[self.offsets[i] : self.offsets[i + 1]]
