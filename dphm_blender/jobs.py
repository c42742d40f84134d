"""Running engine jobs from operators: modal with a timer in the UI, blocking in background.

An operator using ``EngineOperator`` defines ``first_job(context)`` (submit a job),
``next_job(context, job)`` (the next job of a chain, or None to finish: apply results
here), optionally ``on_preview(context, event)`` and ``cleanup(context)``. The scene is
only changed by ``next_job`` and previews; ``cleanup`` removes what previews added, so
Esc leaves the scene as it was. Progress and an ETA show in the status bar.
"""

from pathlib import Path

import bpy

from ..core.errors import DPHMError
from . import engine
from .addon import preferences
from .preferences import checkpoint_folder, engine_python

TICK_S = 0.1


def engine_for(context) -> engine.Engine:
    prefs = preferences(context)
    env = {
        "DPHM_WEIGHTS": str(checkpoint_folder(prefs)),
        "DPHM_DEVICE": prefs.device if prefs else "cpu",
        "DPHM_FAMILY": prefs.head_family if prefs else "nphm",
    }
    return engine.get_engine(engine_python(prefs), env=env)


def work_dir(context=None) -> Path:
    """``<blend name>_dphm/`` beside the saved .blend, where takes and caches go."""
    if not bpy.data.filepath:
        raise DPHMError("save the .blend first: DPHM keeps its takes and caches beside it")
    blend = Path(bpy.data.filepath)
    folder = blend.with_name(blend.stem + "_dphm")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def relative(path) -> str:
    """A path as Blender stores it: relative to the .blend (``//``) where possible."""
    try:
        return bpy.path.relpath(str(path))
    except ValueError:  # another drive on Windows
        return str(path)


def absolute(path: str) -> Path:
    return Path(bpy.path.abspath(path)) if path else Path()


def scene_take(cls, context):
    """For an operator's poll: the scene's DPHM settings when it has a take, else None with
    the reason set as the poll message."""
    s = getattr(context.scene, "dphm", None)
    if s is None or not s.take:
        cls.poll_message_set("Track a capture first (Track panel)")
        return None
    return s


def take_file(s) -> Path:
    """The scene's take file; one clear error when it has gone."""
    take = absolute(s.take)
    if not take.is_file():
        raise DPHMError(f"{take}: the take file is missing")
    return take


def _status(context, text) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


class EngineOperator:
    """Mixin for ``bpy.types.Operator`` subclasses that run engine jobs."""

    bl_options = {"REGISTER", "UNDO"}

    def first_job(self, context):
        raise NotImplementedError

    def next_job(self, context, job):
        return None

    def on_preview(self, context, event) -> None:
        pass

    def cleanup(self, context) -> None:
        pass

    def _fail(self, context, message) -> set:
        self.cleanup(context)
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    def _advance(self, context, job):
        """The job that runs next, None when done; raises DPHMError for a failed job."""
        if job.state == "error":
            raise DPHMError(job.error)
        if job.state == "cancelled":
            raise DPHMError(f"{job.cmd} was cancelled")
        return self.next_job(context, job)

    # UI: modal, never blocking the main thread
    def invoke(self, context, event):
        try:
            self._job = self.first_job(context)
        except DPHMError as e:
            return self._fail(context, str(e))
        if self._job is None:
            return {"FINISHED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TICK_S, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def _end(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        _status(context, None)

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            self._end(context)
            self.cleanup(context)
            self.report({"WARNING"}, f"DPHM: {self._job.cmd} cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        return self.tick(context)

    def tick(self, context) -> set:
        """One timer step: deliver events, show progress, chain or finish."""
        job = self._job
        for ev in job.poll():
            if ev.get("event") == "preview":
                self.on_preview(context, ev)
        context.window_manager.progress_update(int(1000 * (job.fraction() or 0.0)))
        _status(context, job.status())
        if not job.finished:
            return {"RUNNING_MODAL"}
        try:
            self._job = self._advance(context, job)
        except DPHMError as e:
            self._end(context)
            return self._fail(context, str(e))
        if self._job is not None:
            return {"RUNNING_MODAL"}
        self._end(context)
        return {"FINISHED"}

    # background mode and scripts: the same steps, blocking
    def execute(self, context):
        try:
            job = self.first_job(context)
            while job is not None:
                job.wait(
                    on_event=lambda ev: (
                        ev.get("event") == "preview" and self.on_preview(context, ev)
                    )
                )
                job = self._advance(context, job)
        except DPHMError as e:
            return self._fail(context, str(e))
        return {"FINISHED"}
