"""The demo's Blender scene, built in a headless Blender (bpy) child process.

    python -m dphm.dphm_blender.scripts.demo_scene MANIFEST.json

The manifest (written by ``core/demo.py``) names the bake of the tracked take
(``core/tracking/bake.py``), the capture folder, the .blend to write, the render folder,
the frames to render, Cycles samples and threads. Blender frame i is capture frame i.
Prints ``DPHM-STEP`` lines as it goes and one ``DPHM-RESULT {json}`` line at the end.
"""

import json
import os
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ...core.capture.folder import CaptureFolder
from ..camera import camera_object
from ..pointcloud import point_cloud_object


def _step(text: str) -> None:
    print(f"DPHM-STEP {text}", flush=True)


def build(manifest: dict) -> dict:
    from ...core.tracking.bake import read_bake
    from ..bake import bake_frame_keys

    bake = read_bake(manifest["bake"])
    intr = bake["intrinsics"]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    n = len(bake["frames"])
    scene.frame_start, scene.frame_end = 0, n - 1
    scene.render.fps = int(round(float(bake["fps"])))

    head = bake_frame_keys(bake, "DPHM head", first_frame=0, motion="object")
    head.data.polygons.foreach_set("use_smooth", np.ones(len(bake["faces"]), bool))
    skin = bpy.data.materials.new("DPHM skin")
    skin.diffuse_color = (0.8, 0.62, 0.52, 1.0)
    skin.use_nodes = True
    skin.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (
        0.8,
        0.62,
        0.52,
        1.0,
    )
    head.data.materials.append(skin)

    camera = camera_object("Capture camera", intr, scene)
    frame0 = CaptureFolder(manifest["capture"])[0]
    cloud = point_cloud_object("Depth frame 0", frame0.points())

    centre = Vector(head.matrix_world.translation)
    light = bpy.data.objects.new("Key light", bpy.data.lights.new("Key light", "AREA"))
    light.data.energy, light.data.size = 40.0, 0.5
    light.location = Vector((0.35, 0.0, 0.4))
    light.rotation_euler = (centre - light.location).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(light)
    scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.05, 0.05, 0.06)
    scene.collection.objects.link(camera)
    _step("scene")

    blend = Path(manifest["blend"])
    tmp = blend.with_name(blend.stem + ".partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp), compress=True, check_existing=False)
    os.replace(tmp, blend)
    _step("saved")

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(manifest["samples"])
    scene.cycles.use_denoising = False
    scene.render.threads_mode = "FIXED"
    scene.render.threads = int(manifest["threads"])
    scene.render.resolution_percentage = 50
    scene.render.image_settings.file_format = "PNG"
    renders = Path(manifest["renders"])
    renders.mkdir(parents=True, exist_ok=True)
    written = []
    for f in manifest["render_frames"]:
        scene.frame_set(f)
        scene.render.filepath = str(renders / f"frame_{f:04d}.png")
        bpy.ops.render.render(write_still=True)
        written.append(scene.render.filepath)
        _step(f"render {f}")
    return {
        "blend": str(blend),
        "renders": written,
        "shape_keys": len(head.data.shape_keys.key_blocks) - 1,
        "points": len(cloud.data.vertices),
    }


if __name__ == "__main__":
    report = build(json.loads(Path(sys.argv[1]).read_text()))
    print("DPHM-RESULT " + json.dumps(report), flush=True)
