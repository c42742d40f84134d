"""The capture camera in Blender, and the one fixed mapping from camera space to the world.

Camera space is OpenCV's (x right, y down, z forward, metres). Blender's world is z up:
camera x -> world x, camera y -> world -z, camera z -> world y, so the capture camera sits
at the origin looking along +Y. Meshes and point clouds use the same mapping.
"""

import bpy
import numpy as np
from mathutils import Matrix

# world = CAMERA_TO_WORLD @ camera
CAMERA_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
SENSOR_MM = 36.0


def to_world(points: np.ndarray) -> np.ndarray:
    """(N, 3) camera-space points in Blender world coordinates."""
    return np.asarray(points, np.float64) @ CAMERA_TO_WORLD.T


def head_matrices(R, t, s) -> np.ndarray:
    """(T, 4, 4) object -> world: canonical -> camera (s R c + t), then camera -> world."""
    m = np.zeros((len(R), 4, 4))
    m[:, :3, :3] = CAMERA_TO_WORLD @ (s[:, None, None] * R)
    m[:, :3, 3] = t @ CAMERA_TO_WORLD.T
    m[:, 3, 3] = 1.0
    return m


def camera_object(name: str, intr: dict, scene=None):
    """A camera object with the capture's pinhole intrinsics; sets the scene's resolution.

    Focal length and principal point come from fx, cx, cy on a 36 mm sensor fitted to the
    longer image side; fy is taken equal to fx (square pixels, as the supported cameras).
    """
    scene = scene or bpy.context.scene
    w, h = int(intr["width"]), int(intr["height"])
    cam = bpy.data.cameras.new(name)
    cam.sensor_fit = "HORIZONTAL" if w >= h else "VERTICAL"
    side = max(w, h)
    cam.sensor_width = cam.sensor_height = SENSOR_MM
    cam.lens = intr["fx"] * SENSOR_MM / side
    # Pixel centres are integers (OpenCV); Blender measures the image from its edge.
    cam.shift_x = (intr["cx"] + 0.5 - w / 2) / side
    cam.shift_y = (h / 2 - intr["cy"] - 0.5) / side
    cam.clip_start, cam.clip_end = 0.05, 20.0
    obj = bpy.data.objects.new(name, cam)
    # Blender cameras look along their local -z with y up: local axes in camera space are
    # (x, -y, -z), mapped to the world.
    basis = CAMERA_TO_WORLD @ np.diag([1.0, -1.0, -1.0])
    obj.matrix_world = Matrix([[*row, 0.0] for row in basis] + [[0.0, 0.0, 0.0, 1.0]])
    scene.render.resolution_x, scene.render.resolution_y = w, h
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.camera = obj
    return obj


def intrinsics_of(obj, scene=None) -> dict:
    """fx, fy, cx, cy of a camera object at the scene's full resolution (inverse of the above)."""
    scene = scene or bpy.context.scene
    cam = obj.data
    w, h = scene.render.resolution_x, scene.render.resolution_y
    side = max(w, h)
    sensor = cam.sensor_width if cam.sensor_fit == "HORIZONTAL" else cam.sensor_height
    f = cam.lens * side / sensor
    return {
        "fx": f,
        "fy": f,
        "cx": w / 2 + cam.shift_x * side - 0.5,
        "cy": h / 2 - cam.shift_y * side - 0.5,
        "width": w,
        "height": h,
    }
