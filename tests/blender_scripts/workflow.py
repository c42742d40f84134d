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
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.tracking.take import read_take
from dphm.dphm_blender import transfer as dphm_transfer
from dphm.dphm_blender.scripts.ui_bench import _TrackSteps

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
# ("best" quality keeps the engine busy long after the first preview)
s.quality = "best"
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
s.quality = "preview"

# Appearance: Gaussians fitted to the simulated colour frames; the bakes then wear them
s.appearance_gaussians, s.appearance_iterations = 1000, 30
result["appearance_poll"] = bpy.ops.dphm.appearance.poll()
result["appearance"] = list(bpy.ops.dphm.appearance())
result["appearance_path"] = s.appearance

for kind in ("SHAPE_KEYS", "ARKIT", "MESH_CACHE", "ALEMBIC"):
    s.resolution, s.alembic_resolution = 64, 48
    t = time.monotonic()
    result[f"bake_{kind}"] = list(bpy.ops.dphm.bake(kind=kind))
    result[f"bake_{kind}_s"] = time.monotonic() - t
result["objects"] = sorted(o.name for o in bpy.data.objects)
head = bpy.data.objects["DPHM take_001"]
result["frame_keys"] = len(head.data.shape_keys.key_blocks) - 1
colour = head.data.color_attributes.get("DPHM colour")
result["head_colours"] = (np.array([c.color[:3] for c in colour.data]).mean(0).tolist()
                          if colour else None)  # fmt: skip
result["head_material_nodes"] = sorted(n.type for m in head.data.materials
                                       for n in m.node_tree.nodes)  # fmt: skip
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
# Transfer: onto a model identity as ARKit keys
take = read_take(bpy.path.abspath(s.take))
s.transfer_target, s.transfer_identity, s.transfer_output = "CODEBOOK", 3, "ARKIT"
result["transfer_codebook"] = list(bpy.ops.dphm.transfer())
other = bpy.data.objects.get("DPHM take_001 on id3")
result["transfer_codebook_keys"] = len(other.data.shape_keys.key_blocks) - 1 if other else 0

# Transfer onto a character of its own topology: a sampled head, decimated, with UVs
source = bpy.data.objects["DPHM sample s0 id1"]
character = bpy.data.objects.new("Character", source.data.copy())
scene.collection.objects.link(character)
decimate = character.modifiers.new("decimate", "DECIMATE")
decimate.ratio = 0.4
bpy.context.view_layer.objects.active = character
bpy.ops.object.modifier_apply(modifier=decimate.name)
character.data.uv_layers.new(name="UVMap")
character.data.materials.append(bpy.data.materials.new("Character skin"))
n_vertices = len(character.data.vertices)
for o in bpy.context.view_layer.objects:
    o.select_set(o is character)
result["landmarks"] = list(bpy.ops.dphm.place_landmarks())
result["landmark_empties"] = len(bpy.data.collections["DPHM Landmarks"].objects)
s.transfer_target, s.transfer_output = "CHARACTER", "SHAPE_KEYS"
result["transfer_character"] = list(bpy.ops.dphm.transfer())
keys = character.data.shape_keys.key_blocks
rest = np.array([v.co for v in keys[0].data])
moved = [float(np.abs(np.array([v.co for v in k.data]) - rest).max()) for k in keys[1:]]
result["character"] = {
    "vertices_before": n_vertices,
    "vertices_after": len(character.data.vertices),
    "uv_layers": [u.name for u in character.data.uv_layers],
    "materials": [m.name for m in character.data.materials],
    "frame_keys": len(keys) - 1,
    "max_move_m": max(moved),
}

# Driving existing ARKit keys: the ARKit head, keys renamed to common variants, two removed
rig = bpy.data.objects["DPHM take_001 ARKit"]
rig.shape_key_remove(rig.data.shape_keys.key_blocks["cheekPuff"])
rig.shape_key_remove(rig.data.shape_keys.key_blocks["tongueOut"])
blocks = rig.data.shape_keys.key_blocks
blocks["eyeBlinkLeft"].name = "EyeBlink_L"
blocks["jawOpen"].name = "JAWOPEN"
blocks["mouthSmileRight"].name = "mouthSmile.R"
rig.data.shape_keys.animation_data_clear()
for o in bpy.context.view_layer.objects:
    o.select_set(o is rig)
bpy.context.view_layer.objects.active = rig
s.arkit_csv = ""
result["drive_missing"] = dphm_transfer.drive_keys(rig, take["arkit"], 99)[1]
result["drive"] = list(bpy.ops.dphm.drive_arkit_keys())  # replaces that action
result["drive_err"] = 0.0
first = s.first_frame + s.take_first_frame
for f in (0, 5):
    scene.frame_set(first + f)
    for key, name in (
        ("EyeBlink_L", "eyeBlinkLeft"),
        ("JAWOPEN", "jawOpen"),
        ("mouthSmile.R", "mouthSmileRight"),
    ):
        err = abs(blocks[key].value - take["arkit"][f, ARKIT_NAMES.index(name)])
        result["drive_err"] = max(result["drive_err"], float(err))
result["csv"] = list(bpy.ops.dphm.export_arkit_csv())
csv = out / "scene_dphm" / "take_001_livelink.csv"
s.arkit_csv = str(csv)
rig.data.shape_keys.animation_data_clear()
result["drive_csv"] = list(bpy.ops.dphm.drive_arkit_keys())
scene.frame_set(s.first_frame + 4)
result["drive_csv_err"] = float(
    abs(blocks["JAWOPEN"].value - take["arkit"][4, ARKIT_NAMES.index("jawOpen")])
)

bpy.ops.wm.save_mainfile()
print("DPHM-RESULT " + json.dumps(result), flush=True)
