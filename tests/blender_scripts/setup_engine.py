"""*Set up engine* for real, in a stock Blender (a venv holding only bpy).

    python setup_engine.py ZIP BUILD

Installs and enables the zip, draws the preferences, runs the Set up engine operator
(background mode: it waits) with the PyTorch build BUILD, then draws again. Prints one line
``DPHM-RESULT {json}``; asserts nothing itself.
"""

import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dphm_blender" / "scripts"))
import bpy
from layout import RecordingLayout  # noqa: E402

addon_utils = __import__("addon_utils")
NAME = "bl_ext.user_default.dphm"


def draw(prefs):
    log = []
    sys.modules[f"{NAME}.dphm_blender.preferences"].draw_preferences(
        RecordingLayout(log, bpy.ops), prefs
    )
    return log


def run(zip_path, build):
    r = {"own_python": sys.executable}
    bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    prefs = bpy.context.preferences.addons[NAME].preferences
    r["python_before"] = prefs.python_path
    r["draw_before"] = draw(prefs)
    r["poll_before"] = bpy.ops.dphm.setup_engine.poll()
    prefs.torch_build = build
    t = time.monotonic()
    r["op"] = sorted(bpy.ops.dphm.setup_engine())
    r["seconds"] = time.monotonic() - t
    r["python_after"] = prefs.python_path
    r["folder"] = bpy.utils.extension_path_user(NAME, path="engine")
    r["setup"] = json.loads(prefs.setup_result) if prefs.setup_result else None
    r["draw_after"] = draw(prefs)
    r["log"] = str(Path(r["folder"]).with_name("engine-setup.log"))
    r["torch_in_blender"] = "torch" in sys.modules
    addon_utils.disable(NAME, default_set=True)
    return r


if __name__ == "__main__":
    try:
        result = run(*sys.argv[1:3])
    except Exception:
        result = {"exception": traceback.format_exc()}
    print("DPHM-RESULT " + json.dumps(result), flush=True)
