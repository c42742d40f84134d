"""Heads sampled from the priors as Blender objects: a grid, re-rolls, in-betweens.

The engine writes meshes in metres in ICT's frame (x to the head's left, y up, z out of
the face); Blender's is z up with the front view looking along +y, so a head faces -y:
(x, y, z) -> (x, -z, y). Each object keeps its codes as custom properties
(``dphm_z_id``, ``dphm_z_exp``) so it can be re-rolled or interpolated later.
"""

import bpy
import numpy as np

from .mesh import mesh_object, new_mesh

COLLECTION = "DPHM Samples"
ICT_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def to_blender(vertices_ict: np.ndarray) -> np.ndarray:
    return np.asarray(vertices_ict, np.float64) @ ICT_TO_BLENDER.T


def collection(scene):
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    if coll.name not in scene.collection.children:
        scene.collection.children.link(coll)
    return coll


def codes(obj) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(z_id, z_exp or None) stored on a sample object, or None for other objects."""
    if obj is None or "dphm_z_id" not in obj:
        return None
    z_exp = obj.get("dphm_z_exp")
    return np.array(obj["dphm_z_id"], np.float32), (
        None if z_exp is None else np.array(z_exp, np.float32)
    )


def head_object(name, vertices_ict, faces, z_id, z_exp, coll, location=(0.0, 0.0, 0.0)):
    obj = mesh_object(name, to_blender(vertices_ict), faces, coll)
    obj.data.polygons.foreach_set("use_smooth", np.ones(len(faces), bool))
    obj.location = location
    obj["dphm_z_id"] = [float(x) for x in z_id]
    if z_exp is not None:
        obj["dphm_z_exp"] = [float(x) for x in z_exp]
    return obj


def replace_mesh(obj, vertices_ict, faces) -> None:
    """Give ``obj`` a new mesh (materials kept), dropping the old one if unused."""
    old = obj.data
    new = new_mesh(old.name, to_blender(vertices_ict), faces)
    for m in old.materials:
        new.materials.append(m)
    new.polygons.foreach_set("use_smooth", np.ones(len(faces), bool))
    obj.data = new
    if old.users == 0:
        bpy.data.meshes.remove(old)


def grid(scene, meshes, extra, spacing: float, seed: int) -> list:
    """Objects for a sampled grid: row i = identity i, column 0 neutral, j expression j."""
    rows, cols = (int(x) for x in extra["grid"])
    coll = collection(scene)
    made = []
    for k, (v, f) in enumerate(meshes):
        i, j = divmod(k, cols)
        name = f"DPHM sample s{seed} id{i}" + (f" exp{j}" if j else "")
        z_exp = extra["z_exp"][k] if extra["has_exp"][k] else None
        made.append(
            head_object(name, v, f, extra["z_id"][k], z_exp, coll, (j * spacing, 0.0, -i * spacing))
        )
    return made
