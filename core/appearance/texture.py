"""Colour for meshes: vertex colours from the Gaussians (what a baked head wears in Blender)
and renders of vertex-coloured meshes (the ``texture`` and ``projected`` rows)."""

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..capture.raster import rasterize
from ..capture.shading import barycentric
from .gaussians import GaussianHead

K_NEAREST = 8


def colours_at(head: GaussianHead, vertices, points) -> np.ndarray:
    """(P, 3) colours in [0, 1] at ``points`` near the surface of the guiding mesh placed at
    ``vertices`` (same units): the view-independent colours of the nearest Gaussians,
    weighted by opacity and a Gaussian of distance (the Gaussians' own spacing)."""
    with torch.no_grad():
        means, _, _ = head.place(torch.as_tensor(vertices, dtype=torch.float32))
        rgb, opacity = head.dc_colour().numpy(), head.opacity.numpy()
    means = means.numpy()
    tree = cKDTree(means)
    spacing = np.median(tree.query(means, k=2)[0][:, 1])
    d, i = tree.query(np.asarray(points, np.float64), k=min(K_NEAREST, len(means)))
    w = opacity[i] * np.exp(-0.5 * (d / (2 * spacing)) ** 2) + 1e-12
    return (np.einsum("pk,pkc->pc", w, rgb[i]) / w.sum(1, keepdims=True)).astype(np.float32)


def render_vertex_colours(vertices, faces, colours, camera) -> np.ndarray:
    """(h, w, 3) float image of a mesh (camera space, metres) with per-vertex ``colours``,
    interpolated over its triangles; black where it is not."""
    from .fit import camera_intrinsics

    intr = camera_intrinsics(camera)
    w, h = intr.width, intr.height
    v = np.asarray(vertices, np.float64)
    r = rasterize(v, faces, intr, cull_back=True)
    bary, pix = barycentric(v, faces, r.tri_id, intr)
    out = np.zeros((int(h) * int(w), 3), np.float32)
    tri = faces[r.tri_id.ravel()[pix]]
    out[pix] = np.einsum("nk,nkc->nc", bary, np.asarray(colours)[tri])
    return out.reshape(int(h), int(w), 3)


def colours_for(path, points, z_id) -> np.ndarray:
    """(P, 3) colours for points (canonical units) on or near the appearance's head: what a
    bake of the take with identity ``z_id`` wears (an appearance of another is an error)."""
    from ..data.corpus import CANONICAL_SCALE
    from ..errors import DPHMError
    from .gaussians import load_appearance

    head, data = load_appearance(path)
    if not np.allclose(data["z_id"], np.asarray(z_id).reshape(-1), atol=1e-6):
        raise DPHMError(f"{path}: the appearance of another take (fit it again for this one)")
    v = data["vertices"] * CANONICAL_SCALE
    return colours_at(head, v, np.asarray(points) * CANONICAL_SCALE)
