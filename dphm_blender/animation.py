"""Keyframes through Blender's layered (slotted) actions, written in bulk.

Blender 4.4+ keeps F-curves in an action's layer -> strip -> channelbag for a slot; 5.0
has no ``Action.fcurves``. 4.2 and 4.3 have only legacy actions, whose F-curves hang on
the action itself. Keyframe points are added at once and filled by ``foreach_set``.
"""

import bpy
import numpy as np
from mathutils import Matrix

_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def channelbag(id_data, name: str):
    """A new action assigned to ``id_data`` (an ID: object, shape key block ...); what holds
    its F-curves (the slot's channelbag, or on Blender < 4.4 the action itself)."""
    action = bpy.data.actions.new(name)
    anim = id_data.animation_data or id_data.animation_data_create()
    if not hasattr(action, "slots"):
        action.id_root = id_data.id_type
        anim.action = action
        return action
    slot = action.slots.new(id_type=id_data.id_type, name=name)
    anim.action = action
    anim.action_slot = slot
    strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def keyframes(bag, data_path: str, index: int, frames, values) -> None:
    """One F-curve with linear keys (frames[i], values[i])."""
    fc = bag.fcurves.new(data_path, index=index)
    co = np.stack([np.asarray(frames, np.float32), np.asarray(values, np.float32)], 1)
    fc.keyframe_points.add(len(co))
    fc.keyframe_points.foreach_set("co", co.ravel())
    fc.keyframe_points.foreach_set("interpolation", np.full(len(co), _LINEAR, np.int32))
    fc.update()


def keyframe_transforms(obj, frames, matrices) -> None:
    """Key location, rotation (quaternion) and scale of ``obj`` from (T, 4, 4) matrices."""
    obj.rotation_mode = "QUATERNION"
    loc, rot, scale = [], [], []
    for m in matrices:
        t, q, s = Matrix(np.asarray(m).tolist()).decompose()
        if rot and np.dot(rot[-1], q) < 0:  # keep the quaternions on one hemisphere
            q.negate()
        loc.append(t), rot.append(q), scale.append(s)
    bag = channelbag(obj, obj.name)
    for path, values in (("location", loc), ("rotation_quaternion", rot), ("scale", scale)):
        values = np.asarray([list(v) for v in values])
        for i in range(values.shape[1]):
            keyframes(bag, path, i, frames, values[:, i])
    obj.matrix_world = Matrix(np.asarray(matrices[0]).tolist())
