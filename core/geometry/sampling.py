"""Area-weighted point sampling on triangle meshes, with face and vertex normals."""

import numpy as np

from ..errors import DPHMError


def _corners(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    return v[np.asarray(triangles, dtype=np.int64)]  # (T, 3, 3)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _cross(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    c = _corners(vertices, triangles)
    return np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])


def triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area of each triangle, (T,)."""
    return 0.5 * np.linalg.norm(_cross(vertices, triangles), axis=1)


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normal of each triangle (right-hand rule on its vertex order), (T, 3)."""
    return _unit(_cross(vertices, triangles))


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, (V, 3); unreferenced vertices get zeros."""
    cross = _cross(vertices, triangles)  # length = 2 * area
    out = np.zeros((len(vertices), 3))
    for k in range(3):
        np.add.at(out, np.asarray(triangles)[:, k], cross)
    return _unit(out)


def region_triangles(triangles: np.ndarray, vertex_mask: np.ndarray) -> np.ndarray:
    """Boolean (T,): triangles whose three vertices are all in the vertex mask."""
    return np.asarray(vertex_mask, dtype=bool)[np.asarray(triangles)].all(axis=1)


def sample_surface(
    vertices: np.ndarray,
    triangles: np.ndarray,
    n: int,
    rng: np.random.Generator | int | None = None,
    vertex_mask: np.ndarray | None = None,
    smooth: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw n points uniformly by area on a triangle mesh.

    rng is a numpy Generator or a seed. vertex_mask (V,) bool restricts sampling to the
    triangles whose vertices are all in the mask. Normals are the face normals, or with
    smooth=True the barycentric interpolation of area-weighted vertex normals.
    Returns points (n, 3), unit normals (n, 3), triangle ids (n,) and barycentrics (n, 3).
    """
    rng = np.random.default_rng(rng)
    triangles = np.asarray(triangles, dtype=np.int64)
    areas = triangle_areas(vertices, triangles)
    if vertex_mask is not None:
        areas = np.where(region_triangles(triangles, vertex_mask), areas, 0.0)
    cdf = np.cumsum(areas)
    if len(cdf) == 0 or cdf[-1] <= 0:
        raise DPHMError("cannot sample a surface with no area (empty mesh or region)")
    tri = np.searchsorted(cdf, rng.uniform(0.0, cdf[-1], n), side="right")
    tri = np.minimum(tri, len(cdf) - 1)
    uv = rng.uniform(size=(n, 2))
    flip = uv.sum(axis=1) > 1.0
    uv[flip] = 1.0 - uv[flip]
    bary = np.column_stack([1.0 - uv.sum(axis=1), uv])
    points = np.einsum("nk,nkd->nd", bary, _corners(vertices, triangles[tri]))
    if smooth:
        vn = vertex_normals(vertices, triangles)
        normals = _unit(np.einsum("nk,nkd->nd", bary, vn[triangles[tri]]))
    else:
        normals = face_normals(vertices, triangles[tri])
    return points, normals, tri, bary
