"""The longest main-thread stall while tracking runs in the engine, in a headless Blender.

    python -m dphm.dphm_blender.scripts.ui_bench [--frames 30] [--quality balanced]

Saves a scene in a temporary folder, previews a simulated take (Capture panel), then runs
the Track operator's own timer step (``StreamingOperator.tick`` with the operator's preview
and finish code) every 0.1 s, as the modal timer does, until the take is written. Each
step is timed; the longest is the stall a user would feel. Prints ``DPHM-RESULT {json}``.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import bpy
import dphm

from ...operators.capture import StreamingOperator
from ...operators.track import DPHM_OT_track
from ..jobs import TICK_S

MARK = "DPHM-RESULT "


class _TrackSteps(StreamingOperator):
    """The Track operator's steps, driven by this loop instead of Blender's event loop."""

    bl_idname = DPHM_OT_track.bl_idname
    first_job = DPHM_OT_track.first_job
    streaming = DPHM_OT_track.streaming
    on_preview = DPHM_OT_track.on_preview
    next_job = DPHM_OT_track.next_job
    cleanup = DPHM_OT_track.cleanup

    def report(self, kind, message):
        self.message = message

    def _end(self, context):
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--quality", default="balanced")
    args = p.parse_args()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    dphm.register()
    folder = Path(tempfile.mkdtemp(prefix="dphm-ui-bench-"))
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "bench.blend"))
    context = bpy.context
    s = context.scene.dphm
    s.source, s.sim_frames, s.quality = "SIMULATED", args.frames, args.quality
    bpy.ops.dphm.capture_preview()
    steps = _TrackSteps()
    steps._job = steps.first_job(context)
    stalls, t0 = [], time.perf_counter()
    while True:
        t = time.perf_counter()
        state = steps.tick(context)
        stalls.append(time.perf_counter() - t)
        if state != {"RUNNING_MODAL"}:
            break
        time.sleep(TICK_S)
    result = {
        "ui_max_block_s": max(stalls),
        "ui_median_step_ms": sorted(stalls)[len(stalls) // 2] * 1000,
        "ui_steps": len(stalls),
        "track_frames": args.frames,
        "track_wall_s": time.perf_counter() - t0,
        "finished": state == {"FINISHED"} and bool(s.take),
    }
    dphm.unregister()
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
