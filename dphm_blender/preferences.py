"""Add-on preferences: the engine's Python, torch device, checkpoint folder, setup check."""

import json
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy.types import AddonPreferences

from ..core.paths import HEAD_FILES, WEIGHTS_DIR
from . import engine_check, engine_setup
from .addon import ADDON_ID, stored_setup_result

DEVICES = (
    ("cpu", "CPU", "Run the engine on the processor (works everywhere)"),
    ("cuda", "CUDA", "NVIDIA GPU; needs a CUDA build of torch"),
    ("mps", "MPS", "Apple silicon GPU (macOS)"),
)


class DPHM_AddonPreferences(AddonPreferences):
    bl_idname = ADDON_ID

    python_path: StringProperty(
        name="Python interpreter",
        description=(
            "Python that runs the DPHM engine (needs torch). "
            "Leave empty to use Blender's own Python"
        ),
        subtype="FILE_PATH",
        default="",
    )
    device: EnumProperty(
        name="Torch device",
        description="Where the engine runs the head model",
        items=DEVICES,
        default="cpu",
    )
    checkpoint_dir: StringProperty(
        name="Checkpoint folder",
        description="Folder with the model and prior checkpoints (*.pt)",
        subtype="DIR_PATH",
        default=str(WEIGHTS_DIR),
    )
    head_family: EnumProperty(
        name="Head model",
        description="Which family of head model the engine tracks, bakes and samples with",
        items=[
            ("nphm", "Local MLPs (NPHM)", "Anchored local MLPs: head_model.pt"),
            ("triplane", "Tri-plane", "Generated feature planes: head_model_triplane.pt"),
        ],
        default="nphm",
    )
    torch_build: EnumProperty(
        name="PyTorch build",
        description="Which PyTorch Set up engine installs",
        items=[(k, label, f"torch from {label}") for k, (label, _, _) in
               engine_setup.TORCH_BUILDS.items()],
        default="CPU",
    )  # fmt: skip
    setup_base_python: StringProperty(
        name="Build from",
        description=(
            "Python 3.11-3.13 the engine's environment is made from. Leave empty for "
            "Blender's own Python, or a python3.11 / python3.13 found on the system"
        ),
        subtype="FILE_PATH",
        default="",
    )
    setup_result: StringProperty(
        name="Setup check result",
        description="JSON result of the last Check setup",
        default="",
        options={"HIDDEN"},
    )

    def draw(self, context):
        draw_preferences(self.layout, self)


def engine_python(prefs) -> str:
    return engine_check.engine_python(prefs.python_path if prefs else "")


def engine_folder() -> Path:
    """Where *Set up engine* puts the engine's Python: the extension's user data folder."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, path="engine", create=False))
    except ValueError:  # loaded as a plain package (pip install -e .), not an extension
        return Path(bpy.utils.user_resource("DATAFILES", path="dphm")) / "engine"


def checkpoint_folder(prefs) -> Path:
    """The folder the engine loads checkpoints from; empty setting = the shipped weights."""
    value = (prefs.checkpoint_dir if prefs else "").strip()
    return Path(bpy.path.abspath(value)) if value else WEIGHTS_DIR


def store_setup_result(prefs, result: dict) -> None:
    prefs.setup_result = json.dumps(result)


def _labels(layout, lines, icon="NONE"):
    col = layout.column(align=True)
    for i, line in enumerate(lines):
        col.label(text=line, icon=icon if i == 0 else "NONE")


def _how_to_install(layout, missing, python, own, device, title):
    box = layout.box()
    box.label(text=title, icon="ERROR")
    _labels(box, engine_check.install_steps(missing, python, own_python=own, device=device))
    op = box.operator("dphm.copy_install_commands", text="Copy commands", icon="COPYDOWN")
    op.commands = "\n".join(
        engine_check.install_commands(missing, python, own_python=own, device=device)
    )


def _draw_engine_setup(layout, prefs) -> None:
    """One click: a private Python with torch, or what the running / last setup did."""
    job = engine_setup.setups.job
    row = layout.row(align=True)
    if job is not None and job.running:
        row.label(text=job.status(), icon="TIME")
        row.operator("dphm.cancel_engine_setup", icon="CANCEL")
        return
    row.operator("dphm.setup_engine", icon="IMPORT")
    row.prop(prefs, "torch_build", text="")
    layout.prop(prefs, "setup_base_python")
    if job is not None:
        layout.label(text=job.result["message"], icon="CHECKMARK" if job.result["ok"] else "ERROR")
        layout.label(text=f"Log: {job.result['log']}")


def draw_preferences(layout, prefs) -> None:
    """Draw the panel; a plain function so tests can drive it with a recording layout."""
    python = engine_python(prefs)
    own = engine_check.is_own_python(python)

    box = layout.box()
    box.label(text="Engine", icon="PREFERENCES")
    _draw_engine_setup(box, prefs)
    box.prop(prefs, "python_path")
    if not prefs.python_path.strip():
        box.label(text=f"Using Blender's own Python: {python}")
    box.prop(prefs, "device")
    box.prop(prefs, "checkpoint_dir")
    folder = checkpoint_folder(prefs)
    if not folder.is_dir():
        box.label(text=f"Folder not found: {folder}", icon="ERROR")
    box.prop(prefs, "head_family")
    head = HEAD_FILES[prefs.head_family]
    if folder.is_dir() and not (folder / head).is_file():
        box.label(text=f"{head} is not in the checkpoint folder: train it with "
                  f"dphm train model --family {prefs.head_family}", icon="ERROR")  # fmt: skip

    box = layout.box()
    row = box.row()
    row.label(text="Setup", icon="CONSOLE")
    if engine_check.checks.running():
        row.label(text="Checking ...", icon="TIME")
    row.operator("dphm.check_setup", icon="VIEWZOOM")

    result = stored_setup_result(prefs)
    if result is not None and result.get("python") == python:
        ok = not result.get("error") and not result["missing"]
        _labels(
            box,
            engine_check.report_lines(result, device=prefs.device),
            icon="CHECKMARK" if ok else "ERROR",
        )
        if result.get("error"):
            return
        if result["missing"]:
            _how_to_install(
                box,
                result["missing"],
                python,
                own,
                prefs.device,
                f"DPHM cannot run yet: {', '.join(result['missing'])} missing",
            )
        elif result["missing_optional"]:
            box.label(
                text="Live cameras also need the drivers below (recordings work without):",
                icon="INFO",
            )
            _labels(
                box,
                engine_check.install_commands(result["missing_optional"], python, own_python=False),
            )
            for name in result["missing_optional"]:
                if note := engine_check.install_note(name):
                    box.label(text=f"{name}: {note}")
        return

    # Not checked yet for this interpreter. For Blender's own Python a cheap look-up (no
    # import) already tells whether torch is there, so the install hint shows straight away.
    if own and not engine_check.torch_findable_here():
        _how_to_install(
            box,
            ["torch"],
            python,
            own,
            prefs.device,
            "PyTorch (torch) is not installed in Blender's Python; DPHM needs it",
        )
        box.label(text="Then press Check setup to see whether anything else is missing.")
    else:
        box.label(
            text="Press Check setup to see whether this Python can run the engine.", icon="INFO"
        )


CLASSES = (DPHM_AddonPreferences,)
