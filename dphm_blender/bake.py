"""Bake writers: a take's bake (``core.tracking.bake``, ``dphm-bake/1``) as Blender objects.

Every writer reads the bake dict of ``bake_take``/``read_bake`` and returns the new object,
linked to ``collection`` (default: the scene's). Blender frame ``first_frame + i`` shows
take frame ``i``. The head's rigid motion, canonical -> camera -> world
(``camera.head_matrices``), is either keyed on the object (``motion="object"``), baked
into the vertices in world coordinates with the object at the origin (``"geometry"``), or
left out (``"none"``: canonical units at the origin).
"""

from pathlib import Path

import bpy
import numpy as np

from ..core.data.arkit import ARKIT_NAMES
from ..core.errors import DPHMError
from ..core.tracking.export import write_pc2
from .animation import channelbag, keyframe_transforms, keyframes
from .camera import head_matrices
from .mesh import mesh_object
from .shapekeys import frame_shape_keys

MOTIONS = ("object", "geometry", "none")
FRAME_ATTRIBUTE = "dphm_frame"


def world_matrices(bake: dict) -> np.ndarray:
    """(T, 4, 4) canonical -> world of each frame."""
    return head_matrices(bake["R"], bake["t"], bake["s"])


def _check_motion(motion: str, allowed=MOTIONS) -> None:
    if motion not in allowed:
        raise DPHMError(f"rigid motion {motion!r} is not one of {', '.join(allowed)}")


def _transform(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (np.asarray(v, np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)


def posed_frames(bake: dict, motion: str = "object"):
    """Per frame (V, 3) float32 vertices in object space: world ones for ``"geometry"``."""
    if motion != "geometry":
        yield from bake["frames"]
        return
    for v, m in zip(bake["frames"], world_matrices(bake), strict=True):
        yield _transform(v, m)


def _head(bake: dict, name: str, motion: str, collection):
    rest = bake["rest"]
    if motion == "geometry" and len(bake["frames"]):
        rest = _transform(rest, world_matrices(bake)[0])
    obj = mesh_object(name, rest, bake["faces"], collection)
    obj.data.polygons.foreach_set("use_smooth", np.ones(len(bake["faces"]), bool))
    if "colours" in bake:
        paint(obj, bake["colours"])
    return obj


def paint(obj, colours: np.ndarray) -> None:
    """Vertex colours (V, 3) in [0, 1] as the mesh's colour attribute, and a material that
    renders them (Cycles and EEVEE)."""
    mesh = obj.data
    attr = mesh.color_attributes.new("DPHM colour", "FLOAT_COLOR", "POINT")
    c = np.asarray(colours, np.float32)
    rgba = np.concatenate([c, np.ones((len(c), 1), np.float32)], 1)
    attr.data.foreach_set("color", rgba.ravel())
    mat = bpy.data.materials.new(f"{obj.name} skin")
    if bpy.app.version < (5, 0, 0):  # node trees by default from 5.0
        mat.use_nodes = True
    nodes = mat.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    node = nodes.new("ShaderNodeVertexColor")
    node.layer_name = attr.name
    mat.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    mesh.materials.append(mat)


def _key_motion(obj, matrices: np.ndarray, first_frame: int, motion: str) -> None:
    if motion == "object" and len(matrices):
        keyframe_transforms(obj, first_frame + np.arange(len(matrices)), matrices)


def bake_frame_keys(bake, name="DPHM head", first_frame=1, motion="object", collection=None):
    """The head with one shape key per frame (``frame000001`` ...), each keyed 0 -> 1 -> 0
    around its own frame. The largest inverse-deformation residual of the bake (mm) is kept
    in the object's ``dphm_residual_mm`` property."""
    _check_motion(motion)
    obj = _head(bake, name, motion, collection)
    if len(bake.get("residual_mm", ())):
        obj["dphm_residual_mm"] = float(np.max(bake["residual_mm"]))
    frame_shape_keys(obj, posed_frames(bake, motion), first_frame)
    _key_motion(obj, world_matrices(bake), first_frame, motion)
    return obj


def bake_arkit_keys(bake, name="DPHM ARKit head", first_frame=1, motion="object",
                    collection=None):  # fmt: skip
    """The head with the 52 ARKit shapes as shape keys named as Apple names them, their
    values keyed per frame with the take's weights. The keys share one rest pose, so the
    rigid motion is keyed on the object or left out."""
    _check_motion(motion, ("object", "none"))
    shapes = bake["arkit_shapes"]
    if len(shapes) != len(ARKIT_NAMES):
        raise DPHMError("the bake holds no ARKit shapes: bake the take with arkit_shapes=True")
    obj = _head(bake, name, motion, collection)
    obj.shape_key_add(name="Basis", from_mix=False)
    for key_name, v in zip(ARKIT_NAMES, shapes, strict=True):
        key = obj.shape_key_add(name=key_name, from_mix=False)
        key.data.foreach_set("co", np.asarray(v, np.float32).ravel())
    bag = channelbag(obj.data.shape_keys, f"{obj.name}_arkit")
    frames = first_frame + np.arange(len(bake["arkit"]))
    for j, key_name in enumerate(ARKIT_NAMES):
        keyframes(bag, f'key_blocks["{key_name}"].value', 0, frames, bake["arkit"][:, j])
    _key_motion(obj, world_matrices(bake), first_frame, motion)
    return obj


def bake_mesh_cache(bake, pc2_path, name="DPHM head (cache)", first_frame=1, motion="object",
                    collection=None):  # fmt: skip
    """The head with a Mesh Cache modifier playing ``pc2_path`` (written here, one sample per
    frame). The path is stored relative to the .blend when the .blend has been saved."""
    _check_motion(motion)
    pc2_path = Path(pc2_path).resolve()
    write_pc2(pc2_path, posed_frames(bake, motion), fps=float(bake["fps"]), start=first_frame)
    obj = _head(bake, name, motion, collection)
    mod = obj.modifiers.new("DPHM cache", "MESH_CACHE")
    mod.cache_format = "PC2"
    mod.filepath = bpy.path.relpath(str(pc2_path)) if bpy.data.filepath else str(pc2_path)
    mod.play_mode, mod.time_mode, mod.deform_mode = "SCENE", "FRAME", "OVERWRITE"
    mod.interpolation = "LINEAR"
    # Blender reads sample (frame_scale * frame - frame_start) in FRAME mode.
    mod.frame_start, mod.frame_scale = float(first_frame), 1.0
    _key_motion(obj, world_matrices(bake), first_frame, motion)
    return obj


def _frame_picker(first_frame: int):
    """A geometry-nodes group keeping the points whose ``FRAME_ATTRIBUTE`` is the scene
    frame minus ``first_frame`` (and the faces between them)."""
    tree = bpy.data.node_groups.new("DPHM frame picker", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = tree.nodes, tree.links
    group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    attr = nodes.new("GeometryNodeInputNamedAttribute")
    attr.data_type = "FLOAT"
    attr.inputs["Name"].default_value = FRAME_ATTRIBUTE
    time = nodes.new("GeometryNodeInputSceneTime")
    index = nodes.new("ShaderNodeMath")
    index.operation = "SUBTRACT"
    index.inputs[1].default_value = float(first_frame)
    other = nodes.new("FunctionNodeCompare")
    other.data_type, other.operation = "FLOAT", "NOT_EQUAL"
    other.inputs["Epsilon"].default_value = 0.5
    delete = nodes.new("GeometryNodeDeleteGeometry")
    delete.domain = "POINT"
    drop = nodes.new("GeometryNodeRemoveAttribute")
    drop.inputs["Name"].default_value = FRAME_ATTRIBUTE
    links.new(time.outputs["Frame"], index.inputs[0])
    links.new(attr.outputs["Attribute"], other.inputs["A"])
    links.new(index.outputs[0], other.inputs["B"])
    links.new(group_in.outputs[0], delete.inputs["Geometry"])
    links.new(other.outputs["Result"], delete.inputs["Selection"])
    links.new(delete.outputs["Geometry"], drop.inputs["Geometry"])
    links.new(drop.outputs["Geometry"], group_out.inputs[0])
    return tree


def _sequence_object(name: str, meshes, matrices, first_frame: int):
    """One object whose evaluated mesh at Blender frame ``first_frame + i`` is ``meshes[i]``:
    all frames in one mesh, a per-point frame index, and ``_frame_picker``."""
    verts, faces, index, offset = [], [], [], 0
    for i, (v, f) in enumerate(meshes):
        verts.append(_transform(v, matrices[i]) if matrices is not None else v)
        faces.append(np.asarray(f, np.int64) + offset)
        index.append(np.full(len(v), i, np.int32))
        offset += len(v)
    obj = mesh_object(name, np.concatenate(verts), np.concatenate(faces))
    attr = obj.data.attributes.new(FRAME_ATTRIBUTE, "INT", "POINT")
    attr.data.foreach_set("value", np.concatenate(index))
    picker = obj.modifiers.new("DPHM frame picker", "NODES")
    picker.node_group = _frame_picker(first_frame)
    return obj


def _remove(obj) -> None:
    mesh, groups = obj.data, [m.node_group for m in obj.modifiers if m.type == "NODES"]
    bpy.data.objects.remove(obj)
    bpy.data.meshes.remove(mesh)
    for group in groups:
        bpy.data.node_groups.remove(group)


def set_scene_fps(scene, fps: float) -> None:
    """The scene plays at ``fps`` exactly (an integer rate and a base for fractional ones)."""
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps


def bake_alembic(meshes, abc_path, fps, first_frame=1, name="DPHM head (Alembic)",
                 matrices=None, motion="object", collection=None):  # fmt: skip
    """Per-frame meshes of varying topology (``bake.frame_meshes``: (vertices, faces),
    canonical units) written to ``abc_path`` by Blender's Alembic exporter and imported back:
    the returned object plays the file through a Mesh Sequence Cache modifier. ``matrices``
    (T, 4, 4) (``world_matrices``) place the head as ``motion`` says; without them it stays
    in canonical units. The scene's frame rate becomes ``fps`` (Alembic samples by time)."""
    _check_motion(motion)
    meshes = list(meshes)
    if not meshes:
        raise DPHMError(f"{abc_path}: no frames to write")
    abc_path = Path(abc_path).resolve()
    abc_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = abc_path.with_name(abc_path.stem + ".partial.abc")
    scene, view_layer = bpy.context.scene, bpy.context.view_layer
    set_scene_fps(scene, float(fps))
    baked = matrices if motion == "geometry" else None
    source = _sequence_object(name, meshes, baked, first_frame)
    selected = [o for o in view_layer.objects if o.select_get()]
    for o in selected:
        o.select_set(False)
    source.select_set(True)
    frame = scene.frame_current
    try:
        bpy.ops.wm.alembic_export(
            filepath=str(tmp), start=first_frame, end=first_frame + len(meshes) - 1,
            selected=True, uvs=False, orcos=False, export_hair=False, export_particles=False,
            export_custom_properties=False, evaluation_mode="VIEWPORT",
            init_scene_frame_range=False, as_background_job=False,
        )  # fmt: skip
    finally:
        _remove(source)
        scene.frame_set(frame)
    tmp.replace(abc_path)
    before = set(bpy.data.objects)
    bpy.ops.wm.alembic_import(filepath=str(abc_path), set_frame_range=False,
                              always_add_cache_reader=True, as_background_job=False)  # fmt: skip
    (obj,) = (o for o in bpy.data.objects if o not in before)
    obj.name = name  # Alembic object names have no spaces
    for c in [c for c in obj.constraints if c.type == "TRANSFORM_CACHE"]:
        obj.constraints.remove(c)  # the exported transform is the identity: motion is ours
    for o in view_layer.objects:
        o.select_set(o in selected)
    if collection is not None:
        for c in obj.users_collection:
            c.objects.unlink(obj)
        collection.objects.link(obj)
    if matrices is not None:
        _key_motion(obj, np.asarray(matrices), first_frame, motion)
    return obj
