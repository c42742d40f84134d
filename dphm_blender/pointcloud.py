"""A depth frame's back-projected points as a vertices-only mesh (a viewport preview)."""

import numpy as np

from .camera import to_world
from .mesh import mesh_object


def point_cloud_object(name: str, points_camera: np.ndarray, collection=None):
    """Camera-space points (N, 3) as a mesh of N loose vertices, in world coordinates."""
    obj = mesh_object(name, to_world(points_camera), None, collection)
    obj.hide_render = True  # loose vertices do not render; keep the renders about the head
    return obj
