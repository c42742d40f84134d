"""A take on the user's character, in Blender: its mesh out to the engine, the results back
as shape keys, ARKit keys or a mesh cache on the character itself (topology, UVs and
materials untouched), and driving shape keys it already has from ARKit weights.

Manual landmarks are empties named ``DPHM <landmark>`` (``core.transfer.landmarks``
``MANUAL_LANDMARKS``) in the collection ``DPHM Landmarks``; their world positions are read
in the character's object coordinates.
"""

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..core.data.arkit import ARKIT_NAMES
from ..core.engine.files import write_meshes
from ..core.errors import DPHMError
from ..core.tracking.export import write_pc2
from ..core.transfer.arkit_names import key_tracks, match_arkit_keys
from .animation import channelbag, keyframe_transforms, keyframes
from .shapekeys import frame_shape_keys

LANDMARKS = "DPHM Landmarks"
PREFIX = "DPHM "


def write_character(obj, path: Path) -> Path:
    """The character's vertices (object coordinates, rest shape) and triangles as a mesh
    list of one, for the engine."""
    mesh = obj.data
    if mesh.shape_keys is not None:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.shape_keys.reference_key.data.foreach_get("co", co)
    else:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
    mesh.calc_loop_triangles()
    tris = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    if not len(tris):
        raise DPHMError(f"{obj.name}: the mesh has no faces to fit")
    return write_meshes(path, [(co.reshape(-1, 3), tris.reshape(-1, 3))])


def landmarks_of(obj) -> dict | None:
    """Manual landmarks (name -> [x, y, z] in ``obj``'s coordinates), or None without any."""
    coll = bpy.data.collections.get(LANDMARKS)
    if coll is None:
        return None
    to_local = obj.matrix_world.inverted()
    marks = {
        o.name[len(PREFIX) :]: list(to_local @ o.matrix_world.translation)
        for o in coll.objects
        if o.name.startswith(PREFIX)
    }
    return marks or None


def place_landmarks(obj, positions: dict, scene) -> list:
    """Empties for the manual landmarks at ``positions`` (object coordinates of ``obj``)."""
    coll = bpy.data.collections.get(LANDMARKS) or bpy.data.collections.new(LANDMARKS)
    if coll.name not in scene.collection.children:
        scene.collection.children.link(coll)
    size = max(obj.dimensions) / 40 if max(obj.dimensions) > 0 else 0.005
    made = []
    for name, p in positions.items():
        empty = bpy.data.objects.get(PREFIX + name)
        if empty is None:
            empty = bpy.data.objects.new(PREFIX + name, None)
            coll.objects.link(empty)
        empty.empty_display_type, empty.empty_display_size = "SPHERE", size
        empty.matrix_world = obj.matrix_world @ Matrix.Translation(p)
        made.append(empty)
    return made


def _shape_key_block(obj):
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    return obj.data.shape_keys


def frame_keys(obj, frames: np.ndarray, first_frame: int) -> list:
    """One shape key per frame on the character, each keyed on its frame."""
    _shape_key_block(obj)
    return frame_shape_keys(obj, frames, first_frame, prefix="dphm_frame")


def arkit_keys(obj, shapes: np.ndarray, weights: np.ndarray, first_frame: int) -> None:
    """The 52 ARKit shapes as the character's shape keys (Apple's names), keyed with
    ``weights`` (T, 52) from ``first_frame``. Existing keys of those names are replaced."""
    if len(shapes) != len(ARKIT_NAMES):
        raise DPHMError("the transfer holds no ARKit shapes")
    blocks = _shape_key_block(obj).key_blocks
    for name, v in zip(ARKIT_NAMES, shapes, strict=True):
        key = blocks.get(name) or obj.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", np.asarray(v, np.float32).ravel())
    drive_keys(obj, weights, first_frame)


def drive_keys(obj, weights: np.ndarray, first_frame: int) -> tuple[dict, list]:
    """Key the character's ARKit-named shape keys (any common naming variant) with weights
    (T, 52); returns (ARKit name -> key name, ARKit names without a key)."""
    keys = obj.data.shape_keys
    if keys is None:
        raise DPHMError(f"{obj.name}: the object has no shape keys to drive")
    mapping, missing = match_arkit_keys([k.name for k in keys.key_blocks[1:]])
    if not mapping:
        raise DPHMError(f"{obj.name}: none of its shape keys has an ARKit name")
    bag = channelbag(keys, f"{obj.name}_arkit")
    frames = first_frame + np.arange(len(weights))
    for key, values in key_tracks(weights, mapping).items():
        keyframes(bag, f'key_blocks["{key}"].value', 0, frames, values)
    return mapping, missing


def mesh_cache(obj, frames: np.ndarray, pc2: Path, first_frame: int, fps: float):
    """A PC2 of the character's frames beside the .blend, played by a Mesh Cache modifier."""
    write_pc2(pc2, frames, fps=fps, start=first_frame)
    mod = obj.modifiers.new("DPHM transfer", "MESH_CACHE")
    mod.cache_format = "PC2"
    mod.filepath = bpy.path.relpath(str(pc2)) if bpy.data.filepath else str(pc2)
    mod.play_mode, mod.time_mode, mod.deform_mode = "SCENE", "FRAME", "OVERWRITE"
    mod.frame_start, mod.frame_scale = float(first_frame), 1.0
    return mod


def key_motion(obj, R, t, s, first_frame: int) -> None:
    """The take's head motion (object coordinates, relative to its mean pose) keyed on the
    character: world_f = world_rest @ (s R | t)_f."""
    rest = np.array(obj.matrix_world)
    m = np.tile(np.eye(4), (len(R), 1, 1))
    m[:, :3, :3] = np.asarray(s)[:, None, None] * np.asarray(R)
    m[:, :3, 3] = t
    keyframe_transforms(obj, first_frame + np.arange(len(R)), rest @ m)
