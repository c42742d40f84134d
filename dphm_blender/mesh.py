"""Mesh objects from numpy arrays (bulk ``foreach_set``, no per-vertex Python)."""

import bpy
import numpy as np


def mesh_object(name: str, vertices: np.ndarray, faces: np.ndarray | None = None, collection=None):
    """An object holding a new mesh with ``vertices`` (N, 3) and triangles ``faces`` (F, 3)."""
    obj = bpy.data.objects.new(name, new_mesh(name, vertices, faces))
    (collection or bpy.context.scene.collection).objects.link(obj)
    return obj


def new_mesh(name: str, vertices: np.ndarray, faces: np.ndarray | None = None):
    """A mesh datablock with ``vertices`` (N, 3) and triangles ``faces`` (F, 3)."""
    v = np.asarray(vertices, np.float32).reshape(-1, 3)
    f = np.zeros((0, 3), np.int32) if faces is None else np.asarray(faces, np.int32)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(v))
    mesh.vertices.foreach_set("co", v.ravel())
    if len(f):
        mesh.loops.add(f.size)
        mesh.loops.foreach_set("vertex_index", f.ravel())
        mesh.polygons.add(len(f))
        mesh.polygons.foreach_set("loop_start", np.arange(0, f.size, 3, dtype=np.int32))
        mesh.polygons.foreach_set("loop_total", np.full(len(f), 3, np.int32))
    mesh.update(calc_edges=True)
    return mesh
