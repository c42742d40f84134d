"""Capture panel operators: preview a source (scrubbable, or live) and record a camera."""

import time

from bpy.types import Operator

from ..core.errors import DPHMError
from ..dphm_blender import capture_view, streams
from ..dphm_blender.jobs import EngineOperator, absolute, engine_for, relative, work_dir


def source_input(settings) -> str:
    """The engine's input spec for the chosen recorded source."""
    if settings.source == "FILE":
        path = absolute(settings.source_file)
        if not settings.source_file or not path.is_file():
            raise DPHMError(f"{path or 'no file chosen'}: choose an .mkv, .bag or .r3d recording")
        return str(path)
    if settings.source == "FOLDER":
        path = absolute(settings.source_folder)
        if not settings.source_folder or not path.is_dir():
            raise DPHMError(f"{path or 'no folder chosen'}: choose a capture folder")
        return str(path)
    return streams.live_input(settings.source) if streams.is_live(settings.source) else ""


class StreamingOperator(EngineOperator):
    """Operators whose job streams (live preview, recording, live tracking): the panel's
    Stop button and Esc end the stream and keep what it made; ``streaming()`` says when."""

    def streaming(self) -> bool:
        return self._job.cmd == "live"

    def tick(self, context):
        if streams.stop_requested(self.bl_idname):
            self._job.stop()
        return EngineOperator.tick(self, context)

    def modal(self, context, event):
        if self.streaming() and event.type == "ESC" and event.value == "PRESS":
            self._job.stop()
            return {"RUNNING_MODAL"}
        return EngineOperator.modal(self, context, event)


class DPHM_OT_capture_preview(StreamingOperator, Operator):
    """Show the source's depth as a point cloud through its camera (scrub the timeline for
    recordings; live for cameras, until Esc or Stop)"""

    bl_idname = "dphm.capture_preview"
    bl_label = "Preview"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not streams.is_running(cls.bl_idname)

    def first_job(self, context):
        s = context.scene.dphm
        self._folder = work_dir(context)
        if streams.is_live(s.source):
            streams.begin(self.bl_idname)
            return engine_for(context).submit(
                "live",
                input=streams.live_input(s.source),
                folder=str(self._folder / "live"),
                max_points=s.preview_points,
            )
        if s.source == "SIMULATED":
            out = self._folder / f"simulated_{s.sim_sequence}_id{s.sim_identity}"
            return engine_for(context).submit(
                "simulate",
                out=str(out),
                identity_seed=s.sim_identity,
                sequence=s.sim_sequence,
                frames=s.sim_frames,
                camera=s.sim_camera,
                roll=s.sim_roll,
                distance=s.sim_distance or None,
                color=s.sim_color,
            )
        return self._cache(context, source_input(s))

    def _cache(self, context, spec: str):
        self._input = spec
        name = absolute(spec).name or "capture"
        return engine_for(context).submit(
            "point_cache",
            input=spec,
            out=str(self._folder / f"{name}.points.npz"),
            max_points=context.scene.dphm.preview_points,
        )

    def on_preview(self, context, event):
        capture_view.show_live(context.scene, event["path"])

    def next_job(self, context, job):
        s = context.scene.dphm
        if job.cmd == "simulate":
            return self._cache(context, job.result["path"])
        if job.cmd == "live":
            streams.end(self.bl_idname)
            self.report({"INFO"}, f"DPHM: live preview ended after {job.result['frames']} frames")
            return None
        n = capture_view.load_point_cache(context.scene, absolute(job.result["path"]))
        s.capture_path = relative(self._input)
        self.report({"INFO"}, f"DPHM: {n} depth frames from {self._input}")
        return None

    def cleanup(self, context):
        streams.end(self.bl_idname)


class DPHM_OT_record(StreamingOperator, Operator):
    """Record the live camera to a capture folder beside the .blend (Stop or Esc ends it)"""

    bl_idname = "dphm.record"
    bl_label = "Record"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        s = getattr(context.scene, "dphm", None)
        if s is None or not streams.is_live(s.source):
            cls.poll_message_set("Choose a live camera as the source")
            return False
        return not streams.is_running(cls.bl_idname)

    def first_job(self, context):
        s = context.scene.dphm
        folder = work_dir(context)
        self._out = folder / time.strftime("recording_%Y%m%d_%H%M%S")
        streams.begin(self.bl_idname)
        return engine_for(context).submit(
            "live",
            input=streams.live_input(s.source),
            folder=str(folder / "live"),
            record=str(self._out),
            max_points=s.preview_points,
        )

    def on_preview(self, context, event):
        capture_view.show_live(context.scene, event["path"])

    def next_job(self, context, job):
        s = context.scene.dphm
        if job.cmd == "live":
            streams.end(self.bl_idname)
            if not job.result["frames"]:
                raise DPHMError("the camera delivered no frames; nothing was recorded")
            s.source, s.source_folder = "FOLDER", relative(job.result["record"])
            self._input = job.result["record"]
            self._folder = work_dir(context)
            return DPHM_OT_capture_preview._cache(self, context, self._input)
        n = capture_view.load_point_cache(context.scene, absolute(job.result["path"]))
        s.capture_path = relative(self._input)
        self.report({"INFO"}, f"DPHM: recorded {n} frames to {self._input}")
        return None

    def cleanup(self, context):
        streams.end(self.bl_idname)


class DPHM_OT_stop_live(Operator):
    """Stop the live preview or the recording (a recording is kept)"""

    bl_idname = "dphm.stop_live"
    bl_label = "Stop"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return streams.any_running()

    def execute(self, context):
        streams.request_stop()
        return {"FINISHED"}


CLASSES = (DPHM_OT_capture_preview, DPHM_OT_record, DPHM_OT_stop_live)
