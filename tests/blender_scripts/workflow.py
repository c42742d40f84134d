"""The artist's workflow in headless Blender, operator by operator; prints what it saw.

    python workflow.py OUT_DIR

Saves OUT_DIR/scene.blend, previews a simulated performer, tracks it, bakes it four ways,
samples heads, re-rolls one, interpolates two, cancels a job, saves. Prints one line
``DPHM-RESULT {json}``; tests/test_blender_workflow.py judges it.
"""

import json
import sys
import time
from pathlib import Path

import bpy
import numpy as np

import dphm

out = Path(sys.argv[1])
result = {}
bpy.ops.wm.read_factory_settings(use_empty=True)
dphm.register()
bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))
scene = bpy.context.scene
s = scene.dphm
result["track_poll_before"] = bpy.ops.dphm.track.poll()
result["bake_poll_before"] = bpy.ops.dphm.bake.poll()

s.source, s.sim_frames, s.sim_sequence = "SIMULATED", 8, "smiling"
t = time.monotonic()
result["preview"] = list(bpy.ops.dphm.capture_preview())
result["preview_s"] = time.monotonic() - t
cloud = bpy.data.objects.get("DPHM Depth")
result["cloud_points"] = len(cloud.data.vertices) if cloud else 0
scene.frame_set(scene.frame_start + 5)
result["cloud_points_f5"] = len(cloud.data.vertices) if cloud else 0
result["frame_range"] = [scene.frame_start, scene.frame_end]
result["camera"] = scene.camera.name if scene.camera else None

s.quality = "preview"
t = time.monotonic()
result["track"] = list(bpy.ops.dphm.track())
result["track_s"] = time.monotonic() - t
result["take"] = s.take
result["preview_head_left"] = "DPHM Tracking preview" in bpy.data.objects

for kind in ("SHAPE_KEYS", "ARKIT", "MESH_CACHE", "ALEMBIC"):
    s.resolution, s.alembic_resolution = 64, 48
    t = time.monotonic()
    result[f"bake_{kind}"] = list(bpy.ops.dphm.bake(kind=kind))
    result[f"bake_{kind}_s"] = time.monotonic() - t
result["objects"] = sorted(o.name for o in bpy.data.objects)

s.sample_identities, s.sample_expressions, s.sample_resolution, s.sample_steps = 2, 1, 48, 10
result["sample"] = list(bpy.ops.dphm.sample_heads())
heads = [o for o in bpy.data.objects if "dphm_z_id" in o]
result["sampled"] = len(heads)
neutral = [o for o in heads if "dphm_z_exp" not in o]
bpy.context.view_layer.objects.active = neutral[0]
before = np.array(neutral[0]["dphm_z_id"])
result["reroll"] = list(bpy.ops.dphm.reroll_head(seed=7))
result["reroll_changed"] = bool(np.abs(np.array(neutral[0]["dphm_z_id"]) - before).max() > 0)
for o in bpy.context.view_layer.objects:
    o.select_set(o in neutral)
s.interpolation_steps = 2
result["interpolate"] = list(bpy.ops.dphm.interpolate_heads())
result["sampled_after"] = len([o for o in bpy.data.objects if "dphm_z_id" in o])
bpy.ops.wm.save_mainfile()
print("DPHM-RESULT " + json.dumps(result), flush=True)
