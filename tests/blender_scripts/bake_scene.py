"""Bake writers in headless Blender; tests/test_blender_bake.py runs and judges this.

    python bake_scene.py build BAKE.npz MESHES.npz OUT_DIR
    python bake_scene.py reload BAKE.npz MESHES.npz OUT_DIR

``build`` saves an empty OUT_DIR/scene.blend, bakes every writer at FIRST_FRAME, measures
them against the core's arrays, saves again and renders a frame with Cycles; ``reload``
opens the .blend and measures again. Prints one line ``DPHM-RESULT {json}`` of what it
observed and asserts nothing itself.
"""

import json
import sys
import traceback
from pathlib import Path

import bpy
import numpy as np
from dphm.core.errors import DPHMError
from dphm.core.tracking.bake import read_bake, to_camera
from dphm.dphm_blender import bake as writers
from dphm.dphm_blender.camera import camera_object, to_world

MARK = "DPHM-RESULT "
FIRST_FRAME = 10
RENDER_FRAME = FIRST_FRAME + 2
NAMES = {
    "keys_object": "Keys object",
    "keys_geometry": "Keys geometry",
    "keys_none": "Keys none",
    "arkit": "ARKit head",
    "cache_object": "Cache object",
    "cache_geometry": "Cache geometry",
    "alembic": "Alembic head",
}


def evaluated_world(obj) -> np.ndarray:
    """(N, 3) world vertices of ``obj``'s evaluated mesh at the current frame."""
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(len(ev.data.vertices) * 3, np.float32)
    ev.data.vertices.foreach_get("co", co)
    m = np.array(ev.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def key_coords(key) -> np.ndarray:
    co = np.empty(len(key.data) * 3, np.float32)
    key.data.foreach_get("co", co)
    return co.reshape(-1, 3)


def placed(bake, v, i) -> np.ndarray:
    """Canonical vertices ``v`` in the world, placed by frame ``i``'s pose."""
    return to_world(bake["s"][i] * np.asarray(v, np.float64) @ bake["R"][i].T + bake["t"][i])


def err(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max()) if len(a) == len(b) else 1e9


def measure(bake, meshes) -> dict:
    """Per object the largest world-space error of its evaluated mesh over all frames, the
    Alembic head's per-frame vertex counts, and the ARKit head's key values."""
    scene, objs = bpy.context.scene, {k: bpy.data.objects[n] for k, n in NAMES.items()}
    errors = {k: 0.0 for k in objs}
    counts, arkit_value_err = [], 0.0
    shapes = bake["arkit_shapes"] - bake["rest"]
    keys = objs["arkit"].data.shape_keys.key_blocks
    for i in range(len(bake["frames"])):
        scene.frame_set(FIRST_FRAME + i)
        world = to_world(to_camera(bake, i))
        expected = {
            "keys_none": bake["frames"][i],
            "arkit": placed(bake, bake["rest"] + np.tensordot(bake["arkit"][i], shapes, 1), i),
            "alembic": placed(bake, meshes[i][0], i),
        }
        for k, obj in objs.items():
            errors[k] = max(errors[k], err(evaluated_world(obj), expected.get(k, world)))
        counts.append(len(objs["alembic"].evaluated_get(
            bpy.context.evaluated_depsgraph_get()).data.vertices))  # fmt: skip
        values = [keys[n].value for n in writers.ARKIT_NAMES]
        arkit_value_err = max(arkit_value_err, err(values, bake["arkit"][i]))
    cache = objs["cache_object"].modifiers["DPHM cache"]
    seq = objs["alembic"].modifiers[0]
    return {
        "eval_err": errors,
        "alembic_counts": counts,
        "arkit_value_err": arkit_value_err,
        "arkit_key_names": [k.name for k in keys][1:],
        "frame_keys": len(objs["keys_object"].data.shape_keys.key_blocks) - 1,
        "cache": [cache.cache_format, cache.filepath, bpy.path.abspath(cache.filepath)],
        "alembic_modifier": [seq.type, bpy.path.abspath(seq.cache_file.filepath)],
        "actions": sorted(a.name for a in bpy.data.actions),
    }


def build(bake, meshes, out: Path) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))
    n = len(bake["frames"])
    scene.frame_start, scene.frame_end = FIRST_FRAME, FIRST_FRAME + n - 1
    build_ = {
        "keys_object": lambda nm: writers.bake_frame_keys(bake, nm, FIRST_FRAME, "object"),
        "keys_geometry": lambda nm: writers.bake_frame_keys(bake, nm, FIRST_FRAME, "geometry"),
        "keys_none": lambda nm: writers.bake_frame_keys(bake, nm, FIRST_FRAME, "none"),
        "arkit": lambda nm: writers.bake_arkit_keys(bake, nm, FIRST_FRAME),
        "cache_object": lambda nm: writers.bake_mesh_cache(bake, out / "head.pc2", nm,
                                                           FIRST_FRAME, "object"),
        "cache_geometry": lambda nm: writers.bake_mesh_cache(bake, out / "world.pc2", nm,
                                                             FIRST_FRAME, "geometry"),
        "alembic": lambda nm: writers.bake_alembic(meshes, out / "head.abc", bake["fps"],
                                                   FIRST_FRAME, nm, writers.world_matrices(bake)),
    }  # fmt: skip
    names = {k: make(NAMES[k]).name for k, make in build_.items()}
    frame_keys = bpy.data.objects[NAMES["keys_geometry"]].data.shape_keys.key_blocks
    anim = bpy.data.objects[NAMES["keys_object"]].data.shape_keys.animation_data
    bag = anim.action.layers[0].strips[0].channelbag(anim.action_slot)
    result = {
        "key_coord_err": max(
            err(key_coords(frame_keys[i + 1]), to_world(to_camera(bake, i))) for i in range(n)
        ),
        "fcurve_frames": [[tuple(k.co) for k in fc.keyframe_points] for fc in bag.fcurves],
        "names": names,
        "residual_mm": bpy.data.objects[NAMES["keys_object"]]["dphm_residual_mm"],
        "errors": [],
        **measure(bake, meshes),
    }
    no_shapes = {**bake, "arkit_shapes": bake["rest"][:0]}
    for bad in (
        lambda: writers.bake_frame_keys(bake, "x", motion="sideways"),
        lambda: writers.bake_arkit_keys(no_shapes),
    ):
        try:
            bad()
        except DPHMError as e:
            result["errors"].append(str(e))
    bpy.ops.wm.save_mainfile()

    camera_object("Capture camera", bake["intrinsics"], scene)
    bpy.data.objects[NAMES["keys_none"]].hide_render = True  # canonical units, around the camera
    scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.8, 0.8, 0.8)
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 2, False
    scene.render.threads_mode, scene.render.threads = "FIXED", 1
    scene.render.resolution_percentage = 10
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(out / "render.png")
    scene.frame_set(RENDER_FRAME)
    bpy.ops.render.render(write_still=True)
    result["render"] = scene.render.filepath
    return result


def main(mode: str, bake_path: str, meshes_path: str, out: str) -> dict:
    bake = read_bake(bake_path)
    with np.load(meshes_path) as z:
        meshes = [(z[f"v{i}"], z[f"f{i}"]) for i in range(len(z.files) // 2)]
    out = Path(out)
    if mode == "build":
        return build(bake, meshes, out)
    bpy.ops.wm.open_mainfile(filepath=str(out / "scene.blend"))
    return measure(bake, meshes)


if __name__ == "__main__":
    try:
        report = main(*sys.argv[1:])
    except Exception:
        report = {"exception": traceback.format_exc()}
    print(MARK + json.dumps(report), flush=True)
