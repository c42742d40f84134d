"""``dphm bench --suite capture``: simulated frames per second and .mkv decode rate."""

import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import DPHMError

TARGETS = {"sim_fps": (">=", 20), "mkv_read_fps": (">=", 200)}


def _median_rate(fn, n: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return float(np.median(rates))


def run(args) -> list[dict]:
    from ..data.ict import load_ict
    from . import k4a_calibration
    from .mkv import KinectRecording
    from .mkv_write import KinectWriter
    from .simulate import HeadSimulator, expression_track, head_motion

    quick = getattr(args, "quick", False)
    try:
        ict = load_ict()
    except DPHMError as e:
        raise DPHMError(f"capture suite needs ICT-FaceKit for the simulated head: {e}") from e
    n, repeats = (15, 2) if quick else (60, 3)
    sim = HeadSimulator(ict, identity_seed=1, seed=1)
    arkit = expression_track("talking", None, n, 30)
    R, t = head_motion(n, 30, sim.pivot, 1)
    frames = []

    def simulate():
        frames.clear()
        frames.extend(sim.frame(i, arkit[i], R[i], t[i]) for i in range(n))

    sim.frame(0, arkit[0], R[0], t[0])  # warm up
    sim_fps = _median_rate(simulate, n, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mkv"
        calib = k4a_calibration.synthetic(sim.intrinsics)
        with KinectWriter(path, calib, sim.intrinsics, 30) as w:
            for _ in range(300 // n if not quick else 1):
                for f in frames:
                    w.write(np.round(f.frame.depth * 1000).astype(np.uint16), f.ir)
        with KinectRecording(path) as rec:
            count = rec.length

            def read():
                for f in rec:
                    f.depth.sum()

            mkv_fps = _median_rate(read, count, repeats)
    return [
        {
            "case": f"ict {ict.n_vertices} verts, {sim.intrinsics.width}x"
            f"{sim.intrinsics.height}, {count} mkv frames",
            "sim_fps": sim_fps,
            "mkv_read_fps": mkv_fps,
        }
    ]
