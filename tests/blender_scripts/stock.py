"""The built zip in a stock Blender: a venv that holds one ``bpy`` release and nothing else.

    python stock.py ZIP DATA_DIR ENGINE_PYTHON OUT_DIR

DATA_DIR holds ``take.npz`` (a stored take), ``bake.npz`` (its bake, ARKit shapes
included) and ``meshes.npz`` (per-frame meshes), made by tests/test_stock_blender.py with
the project's engine. ENGINE_PYTHON is the external interpreter with torch, set in the
preferences as a user without torch in Blender would. In order: install the zip, enable
it (timed to the first panel drawn), draw the preferences and every panel through the
layout stand-in, poll every operator, check the setup, bake the take through the engine
(Bake operator), run every bake writer on the stored bake, save, reload and measure again,
disable. Prints one line ``DPHM-RESULT {json}``; asserts nothing itself.
"""

import json
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dphm_blender" / "scripts"))
import bpy
import numpy as np
from layout import RecordingLayout  # noqa: E402

addon_utils = __import__("addon_utils")
MARK = "DPHM-RESULT "
NAME = "bl_ext.user_default.dphm"
FOREIGN = ("torch", "PIL", "scipy", "skimage", "av", "tqdm", "dphm")
FIRST, PROBE = 5, 2  # first Blender frame of a bake; the take frame measured


def module(sub):
    return sys.modules[f"{NAME}.{sub}"]


def foreign_modules():
    return sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in FOREIGN})


def our_classes():
    return module("dphm_blender")._classes()


def draw_panels(context):
    """Each panel's draw() through the stand-in: {panel: log}."""
    drawn = {}
    for cls in our_classes():
        if issubclass(cls, bpy.types.Panel):
            log = []
            if cls.poll(context):
                cls.draw(SimpleNamespace(layout=RecordingLayout(log, bpy.ops)), context)
            drawn[cls.__name__] = log
    return drawn


def polls():
    """Every operator's poll() in the current context: {bl_idname: bool or error}."""
    out = {}
    for cls in our_classes():
        if issubclass(cls, bpy.types.Operator):
            module_name, _, op = cls.bl_idname.partition(".")
            try:
                out[cls.bl_idname] = bool(getattr(getattr(bpy.ops, module_name), op).poll())
            except Exception as e:
                out[cls.bl_idname] = f"{type(e).__name__}: {e}"
    return out


def world_vertices(obj):
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(len(ev.data.vertices) * 3, np.float32)
    ev.data.vertices.foreach_get("co", co)
    m = np.array(ev.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def deviation(obj, expected):
    """Largest distance (m) between ``obj``'s evaluated vertices and ``expected``."""
    got = world_vertices(obj)
    if got.shape != expected.shape:
        return f"shape {got.shape} != {expected.shape}"
    return float(np.abs(got - expected).max())


def measure(names, expected_world, frame_vertices):
    """Evaluate the baked objects at FIRST + PROBE against the stored bake."""
    bpy.context.scene.frame_set(FIRST + PROBE)
    out = {}
    for key, name in names.items():
        obj = bpy.data.objects.get(name)
        if obj is None:
            out[key] = "missing"
        elif key == "alembic":
            out[key] = len(world_vertices(obj)) - frame_vertices
        else:
            out[key] = deviation(obj, expected_world)
    return out


def run(zip_path, data, engine_python, out_dir):
    r = {"version": bpy.app.version_string, "python": sys.version.split()[0]}
    r["foreign_at_start"] = foreign_modules()
    result = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=False
    )
    r["install"] = sorted(result)
    t0 = time.perf_counter()
    errors = []
    addon_utils.enable(NAME, default_set=True, handle_error=errors.append)
    r["enable_errors"] = [repr(e) for e in errors]
    if errors:
        return r
    context = bpy.context
    panels = draw_panels(context)
    r["first_panel_s"] = time.perf_counter() - t0
    r["panels"] = panels
    r["foreign_after_enable"] = foreign_modules()

    prefs = context.preferences.addons[NAME].preferences
    prefs_log = []
    module("dphm_blender.preferences").draw_preferences(RecordingLayout(prefs_log, bpy.ops), prefs)
    r["preferences"] = prefs_log
    r["polls_fresh"] = polls()

    prefs.python_path = engine_python
    r["check"] = sorted(bpy.ops.dphm.check_setup())
    r["setup"] = json.loads(prefs.setup_result)

    out = Path(out_dir)
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))
    scene = context.scene
    s = scene.dphm
    s.take = bpy.path.relpath(str(Path(data) / "take.npz"))
    s.capture_path = s.take  # a capture (any existing path) lets Track poll
    s.resolution, s.first_frame = 64, FIRST
    r["polls_with_take"] = polls()
    r["panels_with_take"] = draw_panels(context)

    reader = module("core.tracking.bake")
    bake = reader.read_bake(str(Path(data) / "bake.npz"))
    meshes, _ = module("core.engine.files").read_meshes(str(Path(data) / "meshes.npz"))
    camera = module("dphm_blender.camera")
    expected = camera.to_world(reader.to_camera(bake, PROBE))

    t = time.perf_counter()
    r["bake_op"] = sorted(bpy.ops.dphm.bake(kind="SHAPE_KEYS"))
    r["bake_op_s"] = time.perf_counter() - t
    writers = module("dphm_blender.bake")
    names = {"operator": "DPHM take"}
    for key, write in (
        ("keys", lambda n: writers.bake_frame_keys(bake, n, FIRST, "object")),
        ("keys_geometry", lambda n: writers.bake_frame_keys(bake, n, FIRST, "geometry")),
        ("arkit", lambda n: writers.bake_arkit_keys(bake, n, FIRST, "object")),
        ("cache", lambda n: writers.bake_mesh_cache(bake, out / "head.pc2", n, FIRST, "object")),
        (
            "alembic",
            lambda n: writers.bake_alembic(
                meshes, out / "head.abc", bake["fps"], FIRST, n, writers.world_matrices(bake)
            ),
        ),
    ):
        names[key] = write(f"Stock {key}").name
    arkit = bpy.data.objects[names["arkit"]].data.shape_keys.key_blocks
    r["arkit_keys"] = len(arkit) - 1
    r["objects"] = names
    r["measured"] = measure(
        {k: v for k, v in names.items() if k != "arkit"}, expected, len(meshes[PROBE][0])
    )
    r["shape_keys"] = len(bpy.data.objects[names["operator"]].data.shape_keys.key_blocks)
    r["frames"] = len(bake["frames"])
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))

    bpy.ops.wm.open_mainfile(filepath=str(out / "scene.blend"))
    r["reloaded_take"] = bpy.context.scene.dphm.take
    r["reloaded"] = measure(
        {k: v for k, v in names.items() if k != "arkit"}, expected, len(meshes[PROBE][0])
    )
    r["polls_reloaded"] = polls()
    r["foreign_at_end"] = foreign_modules()

    addon_utils.disable(NAME, default_set=True)
    r["registered_after_disable"] = sorted(
        c.__name__ for c in our_classes() if getattr(c, "is_registered", False)
    )
    r["engine_after_disable"] = module("dphm_blender.engine")._engine is not None
    r["scene_settings_after_disable"] = hasattr(bpy.types.Scene, "dphm")
    return r


if __name__ == "__main__":
    try:
        result = run(*sys.argv[1:5])
    except Exception:
        result = {"exception": traceback.format_exc()}
    print(MARK + json.dumps(result), flush=True)
