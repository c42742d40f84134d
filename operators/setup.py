"""Operators behind the preferences: "Check setup" and "Copy commands"."""

import bpy
from bpy.props import StringProperty
from bpy.types import Operator

from ..dphm_blender import engine_check
from ..dphm_blender.addon import preferences
from ..dphm_blender.preferences import engine_python, store_setup_result


def _redraw(context) -> None:
    wm = context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas if window.screen else ():
            area.tag_redraw()


class DPHM_OT_check_setup(Operator):
    """Ask the engine's Python which of torch, scikit-image, av and camera drivers it has"""

    bl_idname = "dphm.check_setup"
    bl_label = "Check setup"
    bl_options = {"INTERNAL"}

    _timer = None
    _job = None

    @classmethod
    def poll(cls, context):
        return preferences(context) is not None and not engine_check.is_running()

    def _start(self, context):
        self._job = engine_check.start(engine_python(preferences(context)))

    def _finish(self, context, result):
        prefs = preferences(context)
        if prefs is not None:
            store_setup_result(prefs, result)
        problem = result.get("error") or result["missing"]
        self.report({"WARNING"} if problem else {"INFO"}, engine_check.summary(result))
        _redraw(context)
        return {"FINISHED"}

    def execute(self, context):
        # Scripts and background mode: nothing to keep responsive, wait for the answer.
        self._start(context)
        return self._finish(context, self._job.wait())

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._start(context)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        _redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        result = self._job.poll()
        if result is None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, result)

    def cancel(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        engine_check.cancel_current()


class DPHM_OT_copy_install_commands(Operator):
    """Copy the install commands to the clipboard, to paste into a terminal"""

    bl_idname = "dphm.copy_install_commands"
    bl_label = "Copy install commands"
    bl_options = {"INTERNAL"}

    commands: StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context):
        context.window_manager.clipboard = self.commands
        self.report({"INFO"}, "Install commands copied; paste them into a terminal")
        return {"FINISHED"}


CLASSES = (DPHM_OT_check_setup, DPHM_OT_copy_install_commands)
