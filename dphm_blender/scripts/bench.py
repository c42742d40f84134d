"""Timing of the bake writers on a synthetic bake, in a headless Blender (bpy) process.

    python -m dphm.dphm_blender.scripts.bench [--frames 1000] [--vertices 25000] [--repeats 3]
                                      [--alembic-frames 30]

Each writer call is timed whole (shape keys and their keyframes; for PC2 the file, the
modifier and the keys), in a fresh empty scene per run; the median of the runs is
reported. Prints one line ``DPHM-RESULT {json}`` (``core/blender_bench.py`` reads it).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np

from ..bake import bake_alembic, bake_arkit_keys, bake_frame_keys, bake_mesh_cache, world_matrices

MARK = "DPHM-RESULT "


def sphere(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (n * 2n, 3), faces) of a latitude-longitude grid on the unit sphere."""
    lat = np.linspace(0.05, np.pi - 0.05, n)
    lon = np.linspace(0.0, 2 * np.pi, 2 * n, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    v = np.stack([np.sin(la) * np.cos(lo), np.sin(la) * np.sin(lo), np.cos(la)], -1)
    idx = np.arange(n * 2 * n).reshape(n, 2 * n)
    a, b = idx[:-1], np.roll(idx, -1, axis=1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, axis=1)[1:]
    faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return v.reshape(-1, 3).astype(np.float32), faces.astype(np.int32)


def synthetic_bake(frames: int, vertices: int, seed: int = 0) -> dict:
    """A bake of a breathing sphere of about ``vertices`` points over ``frames`` frames."""
    rng = np.random.default_rng(seed)
    rest, faces = sphere(max(2, round(np.sqrt(vertices / 2))))
    phase = rng.uniform(0, 2 * np.pi, len(rest)).astype(np.float32)
    time_ = np.arange(frames, dtype=np.float32)[:, None] / 10.0
    frames_ = rest[None] * (1.0 + 0.05 * np.sin(time_ + phase))[..., None]
    angle = 0.3 * np.sin(np.arange(frames) / 20.0)
    R = np.zeros((frames, 3, 3), np.float32)
    R[:, 0, 0], R[:, 0, 2], R[:, 1, 1] = np.cos(angle), np.sin(angle), 1.0
    R[:, 2, 0], R[:, 2, 2] = -np.sin(angle), np.cos(angle)
    return {
        "faces": faces,
        "rest": rest,
        "frames": frames_,
        "R": R,
        "t": np.tile(np.float32([0.0, 0.0, 0.6]), (frames, 1)),
        "s": np.full(frames, 0.1, np.float32),
        "fps": 30.0,
        "arkit": rng.uniform(0, 1, (frames, 52)).astype(np.float32),
        "arkit_shapes": rest[None] + rng.normal(0, 0.01, (52, *rest.shape)).astype(np.float32),
    }


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--vertices", type=int, default=25_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--alembic-frames", type=int, default=30)
    args = p.parse_args(argv)
    bake = synthetic_bake(args.frames, args.vertices)
    meshes = [sphere(100 + i % 7) for i in range(args.alembic_frames)]
    matrices = world_matrices(bake)[: args.alembic_frames]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        row = {
            "frames": args.frames,
            "vertices": len(bake["rest"]),
            "bake_shapekeys_s": _median_time(lambda: bake_frame_keys(bake), args.repeats),
            "bake_pc2_s": _median_time(lambda: bake_mesh_cache(bake, tmp / "h.pc2"), args.repeats),
            "bake_arkit_s": _median_time(lambda: bake_arkit_keys(bake), args.repeats),
            "alembic_frames": args.alembic_frames,
            "bake_alembic_s": _median_time(
                lambda: bake_alembic(meshes, tmp / "h.abc", bake["fps"], matrices=matrices),
                args.repeats,
            ),
        }
    return row


if __name__ == "__main__":
    print(MARK + json.dumps(main(sys.argv[1:])), flush=True)
