"""A vectorised z-buffer: depth, triangle id and incidence of a mesh seen by a pinhole camera.

Every triangle is expanded into the pixel centres of its bounding box, coverage is decided by
edge functions, depth interpolates 1/z linearly in screen space (exact for planar triangles),
and the nearest candidate per pixel wins (``np.minimum.at``). Camera space is OpenCV's.
"""

from typing import NamedTuple

import numpy as np

from .frame import Intrinsics

NEAR = 1e-3


def project(vertices: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(N, 2) pixel coordinates (u, v) of camera-space points."""
    z = vertices[:, 2]
    return np.stack(
        [intr.fx * vertices[:, 0] / z + intr.cx, intr.fy * vertices[:, 1] / z + intr.cy], 1
    )


class Raster(NamedTuple):
    depth: np.ndarray  # (H, W) float32 metres, 0 = empty
    tri_id: np.ndarray  # (H, W) int32, -1 = empty
    cos: np.ndarray  # (H, W) float32 |cos| of the angle between viewing ray and normal


def rasterize(
    vertices: np.ndarray, triangles: np.ndarray, intr: Intrinsics, cull_back: bool = False
) -> Raster:
    """Render ``vertices`` (camera space) and ``triangles``; see ``Raster``.

    ``cull_back`` skips triangles facing away (for consistently wound, outward meshes).
    """
    W, H = intr.width, intr.height
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles, np.int64)
    uv = project(v, intr)
    pu_, pv_ = uv[tri, 0], uv[tri, 1]  # (T, 3) each
    # Edge functions w_i(u, v) = A_i u + B_i v + C_i of the edge opposite vertex i, and 1/z,
    # are linear in the pixel position.
    j, k = [1, 2, 0], [2, 0, 1]  # the edge's two vertices
    C = pu_[:, j] * pv_[:, k] - pv_[:, j] * pu_[:, k]
    area = C.sum(1)  # twice the signed area; < 0 faces the camera
    lo = np.stack(
        [np.ceil(np.minimum(np.minimum(x[:, 0], x[:, 1]), x[:, 2])) for x in (pu_, pv_)]
    ).astype(np.int64)
    hi = np.stack(
        [np.floor(np.maximum(np.maximum(x[:, 0], x[:, 1]), x[:, 2])) for x in (pu_, pv_)]
    ).astype(np.int64)
    np.maximum(lo, 0, out=lo)
    np.minimum(hi, [[W - 1], [H - 1]], out=hi)
    size = hi - lo + 1
    keep = (size[0] > 0) & (size[1] > 0) & (area < 0 if cull_back else area != 0)
    keep &= (v[tri, 2] > NEAR).all(1)
    ids = np.nonzero(keep)[0]
    lo, size, pu_, pv_, C, area = lo[:, ids], size[:, ids], pu_[ids], pv_[ids], C[ids], area[ids]
    A = pv_[:, j] - pv_[:, k]
    B = pu_[:, k] - pu_[:, j]
    iz = 1.0 / v[tri[ids], 2] / area[:, None]
    sign = np.sign(area)  # orient so that inside means every w_i >= 0
    edge = np.concatenate([A.T, B.T, C.T]) * sign
    edge = edge.astype(np.float32)
    plane = np.stack([(A * iz).sum(1), (B * iz).sum(1), (C * iz).sum(1)])
    count = size[0] * size[1]
    t = np.repeat(np.arange(len(ids)), count)
    k = np.arange(len(t)) - np.repeat(np.cumsum(count) - count, count)
    bw = size[0, t]
    pu = lo[0, t] + k % bw
    pv = lo[1, t] + k // bw
    fu, fv = pu.astype(np.float32), pv.astype(np.float32)
    inside = edge[0, t] * fu + edge[3, t] * fv + edge[6, t] >= 0
    for i in (1, 2):
        inside &= edge[i, t] * fu + edge[3 + i, t] * fv + edge[6 + i, t] >= 0
    t, pu, pv = t[inside], pu[inside], pv[inside]
    depth_c = 1.0 / (plane[0, t] * pu + plane[1, t] * pv + plane[2, t])
    pix = pv * W + pu
    zbuf = np.full(H * W, np.inf)
    np.minimum.at(zbuf, pix, depth_c)
    win = np.nonzero(depth_c == zbuf[pix])[0]
    t, pix = t[win], pix[win]
    tri_id = np.full(H * W, -1, np.int32)
    tri_id[pix] = ids[t]
    # With 1/z = a u + b v + c over a triangle, n = (a fx, b fy, a cx + b cy + c) is its
    # normal and n . ray = 1/z for the ray (x/z, y/z, 1) through the pixel.
    a, b, c = plane[0, t], plane[1, t], plane[2, t]
    n = np.sqrt((a * intr.fx) ** 2 + (b * intr.fy) ** 2 + (a * intr.cx + b * intr.cy + c) ** 2)
    x, y = (pu[win] - intr.cx) / intr.fx, (pv[win] - intr.cy) / intr.fy
    cos = np.zeros(H * W, np.float32)
    cos[pix] = np.abs(1.0 / depth_c[win]) / (n * np.sqrt(x * x + y * y + 1))
    zbuf[np.isinf(zbuf)] = 0
    return Raster(zbuf.reshape(H, W).astype(np.float32), tri_id.reshape(H, W), cos.reshape(H, W))


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T, 3) unit normals (orientation as the triangles wind)."""
    v = np.asarray(vertices, np.float64)[np.asarray(triangles)]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)
