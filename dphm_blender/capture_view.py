"""The depth preview in the viewport: a capture camera and a point cloud that follows the
timeline (a point cache) or the live stream, and the fitted head shown while tracking."""

from pathlib import Path

import bpy
import numpy as np
from bpy.app.handlers import persistent

from ..core.engine.files import PointCache, read_meshes
from .camera import CAMERA_TO_WORLD, camera_object
from .jobs import relative
from .mesh import mesh_object

CAMERA = "DPHM Capture camera"
CLOUD = "DPHM Depth"
HEAD_PREVIEW = "DPHM Tracking preview"
_caches: dict[str, tuple[float, PointCache]] = {}


def set_points(mesh, points_camera: np.ndarray) -> None:
    """Replace a mesh's vertices by camera-space points, in world coordinates."""
    world = np.asarray(points_camera, np.float32) @ CAMERA_TO_WORLD.T.astype(np.float32)
    mesh.clear_geometry()
    mesh.vertices.add(len(world))
    mesh.vertices.foreach_set("co", world.ravel())
    mesh.update()


def set_mesh(mesh, vertices_camera: np.ndarray, faces: np.ndarray) -> None:
    v = np.asarray(vertices_camera, np.float32) @ CAMERA_TO_WORLD.T.astype(np.float32)
    f = np.asarray(faces, np.int32)
    mesh.clear_geometry()
    mesh.vertices.add(len(v))
    mesh.vertices.foreach_set("co", v.ravel())
    mesh.loops.add(f.size)
    mesh.loops.foreach_set("vertex_index", f.ravel())
    mesh.polygons.add(len(f))
    mesh.polygons.foreach_set("loop_start", np.arange(0, f.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(f), 3, np.int32))
    mesh.update(calc_edges=True)


def capture_camera(scene, intrinsics: dict):
    """The scene's capture camera (created, or updated to new intrinsics)."""
    old = bpy.data.objects.get(CAMERA)
    if old is not None:
        data = old.data
        bpy.data.objects.remove(old)
        bpy.data.cameras.remove(data)
    cam = camera_object(CAMERA, intrinsics, scene)
    scene.collection.objects.link(cam)
    return cam


def cloud_object(scene):
    obj = bpy.data.objects.get(CLOUD)
    if obj is None:
        obj = mesh_object(CLOUD, np.zeros((0, 3)), None, scene.collection)
        obj.hide_render = True
    return obj


def _cache(path: str) -> PointCache | None:
    p = Path(bpy.path.abspath(path))
    if not p.is_file():
        return None
    stamp = p.stat().st_mtime
    hit = _caches.get(str(p))
    if hit is None or hit[0] != stamp:
        _caches[str(p)] = hit = (stamp, PointCache(p))
    return hit[1]


def show_cache_frame(scene) -> bool:
    """Show the point cache's frame for the scene's current frame; False without one."""
    settings = scene.dphm
    obj = bpy.data.objects.get(CLOUD)
    cache = _cache(settings.point_cache) if settings.point_cache else None
    if obj is None or cache is None or len(cache) == 0:
        return False
    i = int(np.clip(scene.frame_current - settings.first_frame, 0, len(cache) - 1))
    set_points(obj.data, cache[i])
    return True


@persistent
def _on_frame(scene, depsgraph=None) -> None:
    if getattr(scene, "dphm", None) is not None and scene.dphm.point_cache:
        show_cache_frame(scene)


def load_point_cache(scene, path: Path) -> int:
    """Point the scene at a point cache: camera, cloud, frame range; returns its frames."""
    settings = scene.dphm
    cache = PointCache(path)
    settings.point_cache = relative(path)
    capture_camera(scene, cache.intrinsics)
    cloud_object(scene)
    scene.frame_start = settings.first_frame
    scene.frame_end = settings.first_frame + len(cache) - 1
    fps = 1.0 / np.median(np.diff(cache.timestamps)) if len(cache) > 1 else 30.0
    scene.render.fps = int(round(fps))
    show_cache_frame(scene)
    return len(cache)


def show_live(scene, path: str) -> None:
    """The newest live frame (a one-frame point cache written by the engine)."""
    cache = PointCache(path)
    if cache.intrinsics and bpy.data.objects.get(CAMERA) is None:
        capture_camera(scene, cache.intrinsics)
    set_points(cloud_object(scene).data, cache[0])


def show_head(scene, path: str):
    """The tracker's current head (a mesh list of one, camera space) as a preview object."""
    [(v, f)], _ = read_meshes(path)
    obj = bpy.data.objects.get(HEAD_PREVIEW)
    if obj is None:
        obj = mesh_object(HEAD_PREVIEW, np.zeros((0, 3)), None, scene.collection)
        obj.hide_render = True
        obj.display_type = "WIRE"
    set_mesh(obj.data, v, f)
    return obj


def remove_object(name: str) -> None:
    obj = bpy.data.objects.get(name)
    if obj is not None:
        data = obj.data
        bpy.data.objects.remove(obj)
        if data is not None and data.users == 0:
            bpy.data.meshes.remove(data)


def register() -> None:
    if _on_frame not in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.append(_on_frame)


def unregister() -> None:
    while _on_frame in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.remove(_on_frame)
    _caches.clear()
