"""Opens a demo.blend in headless Blender and reports what it holds (tests/test_demo.py judges).

    python demo_check.py DEMO.blend FRAME [FRAME ...]

Prints one line ``DPHM-RESULT {json}``: per frame the head's evaluated vertices (object
space) and world-space vertices, the camera's intrinsics and the point cloud's size.
"""

import json
import sys

import bpy
import numpy as np
from dphm.dphm_blender.camera import intrinsics_of

bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
head = bpy.data.objects["DPHM head"]
out = {
    "shape_keys": len(head.data.shape_keys.key_blocks) - 1,
    "frame_range": [scene.frame_start, scene.frame_end],
    "camera": intrinsics_of(scene.camera, scene),
    "points": len(bpy.data.objects["Depth frame 0"].data.vertices),
    "frames": {},
}
for f in map(int, sys.argv[2:]):
    scene.frame_set(f)
    evaluated = head.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    co = np.zeros(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    m = np.array(evaluated.matrix_world)
    out["frames"][f] = {"local": co.tolist(), "world": (co @ m[:3, :3].T + m[:3, 3]).tolist()}
    evaluated.to_mesh_clear()
print("DPHM-RESULT " + json.dumps(out))
