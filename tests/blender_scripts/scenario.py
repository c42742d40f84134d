"""One headless-Blender scenario per process; tests/test_extension.py runs and judges them.

    python scenario.py install_zip ZIP
    python scenario.py local_repo REPO_DIR
    python scenario.py no_torch REPO_DIR PYTHON_WITHOUT_TORCH

REPO_DIR holds a ``dphm`` entry (a link to the working tree). The script prints one line
``DPHM-RESULT {json}`` with what it observed; it asserts nothing itself, so every failure
is reported by pytest with the full observation.
"""

import importlib
import json
import sys
import traceback
from pathlib import Path

from dphm_classes import CLASS_NAMES  # beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dphm_blender" / "scripts"))
from layout import RecordingLayout  # noqa: E402

MARK = "DPHM-RESULT "


class TorchBlocker:
    """Meta-path finder that makes ``import torch`` fail, as in a Blender without torch."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by test)", name=name)
        return None


if sys.argv[1] == "no_torch":
    sys.meta_path.insert(0, TorchBlocker())
    sys.modules.pop("torch", None)

import bpy  # noqa: E402

addon_utils = importlib.import_module("addon_utils")  # ships with bpy, on sys.path after it


OUR_CLASSES = []  # class objects, collected once the add-on is loaded


def registered_classes():
    """Our classes still registered: by bpy.types name (operators) and by the class itself."""
    names = {n for n in CLASS_NAMES if getattr(bpy.types, n, None) is not None}
    names.update(c.__name__ for c in OUR_CLASSES if c.is_registered)
    return sorted(names)


def collect_classes(module_name):
    OUR_CLASSES[:] = sys.modules[module_name + ".dphm_blender"]._classes()
    return sorted(c.__name__ for c in OUR_CLASSES)


def prefs_class_registered(module_name):
    addon = bpy.context.preferences.addons.get(module_name)
    return bool(addon and addon.preferences and type(addon.preferences).is_registered)


def state(module_name):
    loaded, enabled = addon_utils.check(module_name)
    addon = bpy.context.preferences.addons.get(module_name)
    prefs = addon.preferences if addon else None
    return {
        "enabled": bool(enabled),
        "in_prefs_addons": addon is not None,
        "prefs_type": type(prefs).__name__ if prefs is not None else None,
        "prefs_bl_idname": getattr(type(prefs), "bl_idname", None) if prefs is not None else None,
        "prefs_registered": prefs_class_registered(module_name),
        "registered": registered_classes(),
        "has_check_op": hasattr(bpy.ops.dphm, "check_setup") and bool(registered_classes()),
        "torch_imported": sys.modules.get("torch") is not None,
    }


def add_local_repo(repo_dir):
    repo = bpy.context.preferences.extensions.repos.new(
        name="DPHM working tree", module="dphm_dev", custom_directory=repo_dir, source="USER"
    )
    return f"bl_ext.{repo.module}.dphm"


def enable(module_name):
    errors = []
    mod = addon_utils.enable(module_name, default_set=True, handle_error=errors.append)
    return mod, [repr(e) for e in errors]


def draw(module_name):
    module = sys.modules[module_name + ".dphm_blender.preferences"]
    log = []
    prefs = bpy.context.preferences.addons[module_name].preferences
    module.draw_preferences(RecordingLayout(log), prefs)
    return log


def install_zip(zip_path):
    out = {"version": bpy.app.version_string}
    result = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    name = "bl_ext.user_default.dphm"
    out["install"] = sorted(result)
    out["installed_dir"] = bpy.utils.user_resource("EXTENSIONS", path="user_default/dphm")
    out["classes"] = collect_classes(name)
    out["after_install"] = state(name)
    out["draw"] = draw(name)
    bpy.ops.dphm.check_setup()
    out["own_check"] = json.loads(bpy.context.preferences.addons[name].preferences.setup_result)
    addon_utils.disable(name, default_set=True)
    out["after_disable"] = state(name)
    return out


def local_repo(repo_dir):
    name = add_local_repo(repo_dir)
    out = {"module": name}
    mod, out["enable_errors"] = enable(name)
    out["module_file"] = getattr(mod, "__file__", None)
    out["classes"] = collect_classes(name)
    out["after_enable"] = state(name)
    # Registering again (e.g. a reload) must not raise, nor leave duplicates behind.
    try:
        mod.register()
        mod.register()
        out["register_twice"] = "ok"
    except Exception as e:
        out["register_twice"] = repr(e)
    out["after_register_twice"] = state(name)
    addon_utils.disable(name, default_set=True)
    out["after_disable"] = state(name)
    try:
        mod.unregister()
        out["unregister_twice"] = "ok"
    except Exception as e:
        out["unregister_twice"] = repr(e)
    mod, out["reenable_errors"] = enable(name)
    collect_classes(name)
    out["after_reenable"] = state(name)
    addon_utils.disable(name, default_set=True)
    out["after_second_disable"] = state(name)
    return out


def no_torch(repo_dir, python_without_torch):
    out = {}
    try:
        import torch  # noqa: F401

        out["torch_blocked"] = False
    except ImportError:
        out["torch_blocked"] = True
    name = add_local_repo(repo_dir)
    mod, out["enable_errors"] = enable(name)
    out["classes"] = collect_classes(name)
    out["after_enable"] = state(name)
    # Blender's own Python (blocked torch here): the panel explains at once, no check needed.
    out["draw_own_python"] = draw(name)
    # An engine interpreter without torch: the check says so, with the install commands.
    prefs = bpy.context.preferences.addons[name].preferences
    prefs.python_path = python_without_torch
    out["check_op"] = sorted(bpy.ops.dphm.check_setup())
    out["setup_result"] = json.loads(prefs.setup_result) if prefs.setup_result else None
    out["draw_after_check"] = draw(name)
    prefs.python_path = python_without_torch + "-does-not-exist"
    bpy.ops.dphm.check_setup()
    out["setup_result_bad_path"] = json.loads(prefs.setup_result)
    out["draw_bad_path"] = draw(name)
    addon_utils.disable(name, default_set=True)
    out["after_disable"] = state(name)
    return out


if __name__ == "__main__":
    scenario, args = sys.argv[1], sys.argv[2:]
    try:
        result = {"install_zip": install_zip, "local_repo": local_repo, "no_torch": no_torch}[
            scenario
        ](*args)
    except Exception:
        result = {"exception": traceback.format_exc()}
    print(MARK + json.dumps(result), flush=True)
