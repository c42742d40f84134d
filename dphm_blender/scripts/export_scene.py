"""``dphm export --to blend|abc``, run in a headless Blender (bpy) child process.

    python -m dphm.dphm_blender.scripts.export_scene MANIFEST.json

The manifest names the bake (``core/tracking/bake.py``), for Alembic a mesh list of the
per-frame surfaces (``core/engine/files.py``), the output path and the space ("camera":
head motion baked into the geometry, camera space mapped to Blender's world; "canonical":
the model's units, no motion). A .blend holds the head with a shape key per frame (and the
ARKit-52 head when the bake has its shapes) and the capture camera; an .abc is written by
Blender's Alembic exporter. Blender frame i is take frame i. Prints ``DPHM-RESULT {json}``.
"""

import json
import os
import sys
from pathlib import Path

import bpy

from ...core.engine.files import read_meshes
from ...core.tracking.bake import read_bake
from ..bake import bake_alembic, bake_arkit_keys, bake_frame_keys, world_matrices
from ..camera import camera_object


def build(manifest: dict) -> dict:
    bake = read_bake(manifest["bake"])
    out = Path(manifest["out"])
    motion = "geometry" if manifest["space"] == "camera" else "none"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    n = len(bake["frames"])
    scene.frame_start, scene.frame_end = 0, n - 1
    if out.suffix == ".abc":
        meshes, _ = read_meshes(manifest["meshes"])
        bake_alembic(meshes, out, bake["fps"], 0, "DPHM head", world_matrices(bake), motion)
        return {"out": str(out), "frames": n}
    bake_frame_keys(bake, "DPHM head", 0, motion)
    if len(bake["arkit_shapes"]):
        arkit = bake_arkit_keys(
            bake, "DPHM ARKit head", 0, "object" if motion == "geometry" else "none"
        )
        arkit.hide_set(True)
    if manifest["space"] == "camera" and bake["intrinsics"]:
        scene.collection.objects.link(camera_object("Capture camera", bake["intrinsics"], scene))
    tmp = out.with_name(out.stem + ".partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp), compress=True, check_existing=False)
    os.replace(tmp, out)
    return {"out": str(out), "frames": n}


if __name__ == "__main__":
    report = build(json.loads(Path(sys.argv[1]).read_text()))
    print("DPHM-RESULT " + json.dumps(report), flush=True)
