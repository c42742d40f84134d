"""The artist's workflow in headless Blender, operator by operator; prints what it saw.

    python workflow.py run OUT_DIR      save OUT_DIR/scene.blend, preview a simulated
                                        performer, track it, bake it four ways, sample
                                        heads, re-roll one, interpolate two, save
    python workflow.py reload OUT_DIR   open the saved scene and report what it holds

Prints one line ``DPHM-RESULT {json}``; tests/test_blender_workflow.py judges it.
"""

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import dphm
import numpy as np
from dphm.dphm_blender.ui_bench import _TrackSteps

mode, out = sys.argv[1], Path(sys.argv[2])
result = {}
bpy.ops.wm.read_factory_settings(use_empty=True)
dphm.register()
if mode == "reload":
    bpy.ops.wm.open_mainfile(filepath=str(out / "scene.blend"))
    scene = bpy.context.scene
    result["take"] = scene.dphm.take
    result["take_abs"] = bpy.path.abspath(scene.dphm.take)
    result["objects"] = sorted(o.name for o in bpy.data.objects)
    scene.frame_set(scene.frame_start + 3)
    cloud = bpy.data.objects["DPHM Depth"]
    result["cloud_points_f3"] = len(cloud.data.vertices)
    result["track_poll"] = bpy.ops.dphm.track.poll()
    result["bake_poll"] = bpy.ops.dphm.bake.poll()
    print("DPHM-RESULT " + json.dumps(result), flush=True)
    sys.exit(0)
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

# Esc while tracking: the Track operator's own timer step and modal handler, driven here
steps = _TrackSteps()
names_before, take_before = sorted(o.name for o in bpy.data.objects), s.take
steps._job = steps.first_job(bpy.context)
shown = False
while not steps._job.finished and not shown:
    steps.tick(bpy.context)
    shown = "DPHM Tracking preview" in bpy.data.objects
    time.sleep(0.05)
result["esc_saw_preview"] = shown
result["esc"] = list(steps.modal(bpy.context, SimpleNamespace(type="ESC", value="PRESS")))
steps._job.wait(60)
result["esc_job_state"] = steps._job.state
result["esc_scene_unchanged"] = sorted(o.name for o in bpy.data.objects) == names_before
result["esc_take_unchanged"] = s.take == take_before
result["esc_no_new_take"] = not (out / "scene_dphm" / "take_002.npz").exists()

for kind in ("SHAPE_KEYS", "ARKIT", "MESH_CACHE", "ALEMBIC"):
    s.resolution, s.alembic_resolution = 64, 48
    t = time.monotonic()
    result[f"bake_{kind}"] = list(bpy.ops.dphm.bake(kind=kind))
    result[f"bake_{kind}_s"] = time.monotonic() - t
result["objects"] = sorted(o.name for o in bpy.data.objects)
head = bpy.data.objects["DPHM take_001"]
result["frame_keys"] = len(head.data.shape_keys.key_blocks) - 1
arkit = bpy.data.objects["DPHM take_001 ARKit"]
result["arkit_keys"] = [k.name for k in arkit.data.shape_keys.key_blocks[1:]]
cache = bpy.data.objects["DPHM take_001 cache"]
result["cache_modifier"] = [(m.type, m.filepath) for m in cache.modifiers]
abc = bpy.data.objects["DPHM take_001 Alembic"]
result["alembic_modifiers"] = [m.type for m in abc.modifiers]

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
