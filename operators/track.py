"""Track panel operator: track the previewed capture into a take beside the .blend."""

from bpy.types import Operator

from ..core.errors import DPHMError
from ..dphm_blender import capture_view, streams
from ..dphm_blender.jobs import absolute, engine_for, relative, work_dir
from . import capture


def calibration(s) -> dict:
    """The Track panel's ARKit calibration as engine arguments (neutral clip, gains)."""
    if s.use_neutral and s.neutral_end <= s.neutral_start:
        raise DPHMError(f"neutral frames {s.neutral_start}-{s.neutral_end}: the end must come "
                        "after the start")  # fmt: skip
    gains = [g for g in s.arkit_gains.replace(",", " ").split() if g]
    neutral = f"{s.neutral_start}:{s.neutral_end}" if s.use_neutral else None
    return {"neutral": neutral, "gains": gains}


def next_take_path(folder):
    n = 1
    while (folder / f"take_{n:03d}.npz").exists():
        n += 1
    return folder / f"take_{n:03d}.npz"


class DPHM_OT_track(capture.StreamingOperator, Operator):
    """Track the head in the capture with the diffusion-regularised head model; the fitted
    head shows over the depth points while it runs, the take is stored beside the .blend"""

    bl_idname = "dphm.track"
    bl_label = "Track"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        s = getattr(context.scene, "dphm", None)
        if s is not None and streams.is_live(s.source):
            return not streams.any_running()
        if s is None or not s.capture_path:
            cls.poll_message_set("Preview or record a capture first (Capture panel)")
            return False
        return True

    def first_job(self, context):
        s = context.scene.dphm
        if streams.is_live(s.source):  # track the camera as it streams, recording it too
            folder = work_dir(context)
            self._out, self._live = next_take_path(folder), True
            streams.begin(self.bl_idname)
            return engine_for(context).submit(
                "track",
                input=streams.live_input(s.source),
                out=str(self._out),
                quality=s.quality,
                prior_strength=s.prior_strength,
                landmarks=s.use_landmarks,
                refine=s.use_refine,
                preview_folder=str(folder / "preview"),
                record=str(folder / self._out.stem),
                live=True,
                **calibration(s),
            )
        self._live = False
        source = absolute(s.capture_path)
        if not source.exists():
            raise DPHMError(f"{source}: the capture is gone; preview a source again")
        folder = work_dir(context)
        self._out = next_take_path(folder)
        frames = f"{s.range_start}:{s.range_end}" if s.use_range else None
        if s.use_range and s.range_end <= s.range_start:
            raise DPHMError(f"frame range {frames}: the end must come after the start")
        return engine_for(context).submit(
            "track",
            input=str(source),
            out=str(self._out),
            quality=s.quality,
            frames=frames,
            prior_strength=s.prior_strength,
            landmarks=s.use_landmarks,
            refine=s.use_refine,
            preview_folder=str(folder / "preview"),
            **calibration(s),
        )

    def streaming(self) -> bool:
        return self._live and self._job.cmd == "track"

    def on_preview(self, context, event):
        scene = context.scene
        capture_view.show_head(scene, event["path"])
        scene.frame_current = scene.dphm.first_frame + int(event.get("frame", 0))
        capture_view.show_cache_frame(scene)

    def cleanup(self, context):
        capture_view.remove_object(capture_view.HEAD_PREVIEW)
        streams.end(self.bl_idname)

    def next_job(self, context, job):
        s, r = context.scene.dphm, job.result
        if job.cmd == "point_cache":
            capture_view.load_point_cache(context.scene, absolute(r["path"]))
            return None
        self.cleanup(context)
        s.take, s.take_first_frame = relative(r["take"]), int(r.get("first_frame", 0))
        s.appearance = ""  # the colours of another take
        err = r["fit_error_mm"]
        self.report(
            {"INFO"},
            f"DPHM: tracked {r['frames']} frames at {r['fps']:.2f} fps"
            + (f", median fit {err:.2f} mm" if err is not None else "")
            + (f", {r['lost']} without a head" if r["lost"] else "")
            + (f", {r['skipped']} skipped ({r['skipped_pct']:.0f} %)" if r.get("skipped") else "")
            + (f", colour landmarks on {r['face_frames']}" if r.get("face_frames") else "")
            + f" -> {r['take']}",
        )
        if not r.get("record"):
            return None
        s.source, s.source_folder = "FOLDER", relative(r["record"])
        s.capture_path = relative(r["record"])
        return engine_for(context).submit(
            "point_cache",
            input=r["record"],
            max_points=s.preview_points,
            out=str(work_dir(context) / f"{absolute(r['record']).name}.points.npz"),
        )


CLASSES = (DPHM_OT_track,)
