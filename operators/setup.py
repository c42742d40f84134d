"""Operators behind the preferences: "Set up engine", "Check setup" and "Copy commands"."""

import bpy
from bpy.props import StringProperty
from bpy.types import Operator

from ..dphm_blender import engine_check, engine_setup
from ..dphm_blender.addon import preferences
from ..dphm_blender.preferences import engine_folder, engine_python, store_setup_result


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
        return preferences(context) is not None and not _busy()

    def _start(self, context):
        python = engine_python(preferences(context))
        self._job = engine_check.checks.start(engine_check.SetupCheck(python))

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
        engine_check.checks.cancel()


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


class DPHM_OT_setup_engine(Operator):
    """Create a private Python for the engine in the extension's data folder and install
    PyTorch, scikit-image and av into it (Blender's own Python is not changed)"""

    bl_idname = "dphm.setup_engine"
    bl_label = "Set up engine"
    bl_options = {"INTERNAL"}

    _timer = None
    _job = None

    @classmethod
    def poll(cls, context):
        if preferences(context) is None:
            return False
        if _busy():
            cls.poll_message_set("A setup or check is running")
            return False
        return True

    def invoke(self, context, event):
        prefs = preferences(context)
        label = engine_setup.TORCH_BUILDS[prefs.torch_build][0]
        mb = engine_setup.download_mb(prefs.torch_build)
        return context.window_manager.invoke_confirm(
            self,
            event,
            title="Set up the DPHM engine",
            message=f"Download about {mb} MB (PyTorch {label}, scikit-image, av) into "
            f"{engine_folder()}?",
            confirm_text="Download and install",
        )

    def execute(self, context):
        prefs = preferences(context)
        base = prefs.setup_base_python.strip() or None
        self._job = engine_setup.setups.start(
            engine_setup.EngineSetup(engine_folder(), prefs.torch_build, base)
        )
        if bpy.app.background or context.window is None:
            return self._finish(context, self._job.wait())
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
        if event.type != "TIMER" and not (event.type == "ESC" and event.value == "PRESS"):
            return {"PASS_THROUGH"}
        result = self._job.poll()
        if result is None:
            _status(context, f"DPHM engine setup: {self._job.status()}  (Esc cancels)")
            _redraw(context)
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        _status(context, None)
        return self._finish(context, result)

    def _finish(self, context, result):
        prefs = preferences(context)
        _redraw(context)
        if not result["ok"]:
            self.report({"ERROR"}, f"DPHM engine setup: {result['message']} (log: {result['log']})")
            return {"CANCELLED"}
        prefs.python_path = result["python"]
        self.report({"INFO"}, f"DPHM engine setup: {result['message']}")
        bpy.ops.dphm.check_setup("INVOKE_DEFAULT" if context.window else "EXEC_DEFAULT")
        return {"FINISHED"}


class DPHM_OT_cancel_engine_setup(Operator):
    """Stop the engine setup and remove what it installed so far"""

    bl_idname = "dphm.cancel_engine_setup"
    bl_label = "Cancel setup"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return engine_setup.setups.running()

    def execute(self, context):
        engine_setup.setups.cancel()
        _redraw(context)
        return {"FINISHED"}


def _busy() -> bool:
    """A setup check or an engine setup is running (one at a time)."""
    return engine_check.checks.running() or engine_setup.setups.running()


def _status(context, text) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


CLASSES = (
    DPHM_OT_setup_engine,
    DPHM_OT_cancel_engine_setup,
    DPHM_OT_check_setup,
    DPHM_OT_copy_install_commands,
)
