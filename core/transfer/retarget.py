"""Retargeting a take onto a character mesh of any topology, keeping its own vertices.

The character is aligned to canonical space (``landmarks``), an identity code is fitted to
its head surface (the points within ``FIT_BAND`` of the model's surface, so hair cards,
accessories and the body are left out), and the alignment is refined by ICP against the
fitted identity's surface; two rounds. Each frame then moves every character vertex c
(in canonical space) to the posed point x with x + delta(x) = c (the inverse deformation
of the bake), scaled by a per-vertex weight: 1 on the modelled head surface, falling
smoothly to 0 with the distance from it (``band`` + ``falloff``) and below the model's
neck, so what the model does not cover stays rigid with the head.
"""

import numpy as np
from scipy.spatial import cKDTree

from ..data.corpus import CANONICAL_SCALE
from ..errors import DPHMError
from . import landmarks as lm

FIT_BAND = 0.05  # canonical units (1 cm): character points used for the identity fit
BAND, FALLOFF = 0.05, 0.1  # full weight within 1 cm of the model surface, none past 3 cm
NECK_MARGIN = 0.05  # the model's neck cap is a flat cut: points near it are left out


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _oriented(normals, m, target_normals):
    """Normals turned by the similarity m, each flipped to agree with the target's."""
    n = normals @ m[:3, :3].T
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return np.where((n * target_normals).sum(1, keepdims=True) < 0, -n, n)


def fit_character(
    model,
    content,
    vertices,
    faces,
    landmarks=None,
    up="Z",
    forward="-Y",
    steps=200,
    rounds=2,
    resolution=96,
    seed=0,
) -> dict:
    """Alignment and identity of a character's neutral head.

    ``landmarks``: None for automatic ones, or name -> (x, y, z) in the mesh's
    coordinates (``landmarks.MANUAL_LANDMARKS`` names, at least 3). Returns
    ``alignment`` (4, 4) mesh -> canonical, ``z_id`` (D,), ``fit_error_mm`` (median
    distance of the fitted points to the identity's surface, at the model's head size),
    ``fit_points`` (share of the head's surface samples used), ``landmarks`` (mesh),
    ``neck`` (the canonical height below which nothing moves) and ``surface`` (vertices,
    faces) of the fitted identity in canonical space.
    """
    import torch

    from ..model.fit import code_stats, fit_codes
    from ..tracking.bake import rest_mesh

    vertices = np.asarray(vertices, np.float64)
    points, normals = lm.surface_points(vertices, faces, seed=seed)
    z_id = code_stats(content)["id_mean"].numpy()
    mesh = rest_mesh(model, z_id, resolution)
    if landmarks is None:
        landmarks = lm.detect_landmarks(vertices, faces, up, forward)
        canonical = lm.detect_landmarks(*mesh, up="Y", forward="Z")
    else:
        canonical = lm.MANUAL_LANDMARKS
    m = lm.landmark_alignment(landmarks, canonical)
    floor = mesh[0][:, 1].min() + NECK_MARGIN
    head = lm.apply(m, points)
    head = (head[:, 1] > floor) & (np.abs(head) < 1.2).all(1)
    if head.sum() < 1000:
        raise DPHMError("too little of the mesh lies in the head region after alignment")
    src, src_n = points[head], normals[head]
    used = 0.0
    for _ in range(rounds):
        target, target_n = lm.surface_points(*mesh, seed=seed)
        m, _ = lm.icp(src, target, m)
        aligned = lm.apply(m, src)
        dist, idx = cKDTree(target).query(aligned, workers=-1)
        near = (dist < FIT_BAND) & (aligned[:, 1] > floor)
        if near.sum() < 500:
            raise DPHMError("the mesh's head does not match the model's head after alignment")
        used = float(near.mean())
        z_id, _ = fit_codes(
            model, content, aligned[near], _oriented(src_n[near], m, target_n[idx[near]]),
            steps=steps, batch=2048, z_id=torch.as_tensor(z_id), seed=seed,
        )  # fmt: skip
        z_id = z_id.numpy()
        mesh = rest_mesh(model, z_id, resolution)
    sdf = model.sdf_fn(z_id)(lm.apply(m, src)[near].astype(np.float32)).cpu().numpy()
    return {
        "alignment": m,
        "z_id": z_id,
        "fit_error_mm": float(np.median(np.abs(sdf))) * CANONICAL_SCALE * 1000.0,
        "fit_points": used,
        "landmarks": {k: np.asarray(v, np.float64) for k, v in landmarks.items()},
        "neck": float(floor),
        "surface": mesh,
    }


def vertex_weights(surface, canonical, neck, band=BAND, falloff=FALLOFF) -> np.ndarray:
    """(V,) in [0, 1]: how much each canonical point follows the expression, from its
    distance to the identity's ``surface`` (vertices, faces) and its height over the neck."""
    dist, _ = cKDTree(lm.surface_points(*surface, n=100_000)[0]).query(canonical, workers=-1)
    near = _smoothstep(1.0 - (dist - band) / falloff)
    return (near * _smoothstep((canonical[:, 1] - neck) / falloff)).astype(np.float32)


def pose_points(model, z_id, canonical, codes, weights=None, progress=None):
    """(posed (T, V, 3), residual_mm (T,)): canonical points moved by each expression code,
    each by its weight (default 1) of the inverse deformation; points of weight 0 stay."""
    from ..tracking.bake import _pose

    canonical = np.asarray(canonical, np.float32)
    weights = np.ones(len(canonical), np.float32) if weights is None else weights
    active = weights > 0
    posed = np.repeat(canonical[None], len(codes), 0)
    scale = np.full(len(codes), CANONICAL_SCALE)
    moved, residual = _pose(model, z_id, codes, canonical[active], scale, progress)
    posed[:, active] += weights[active, None] * (moved - canonical[active])
    return posed, residual


def retarget_mesh(
    model,
    content,
    vertices,
    faces,
    z_exp,
    landmarks=None,
    up="Z",
    forward="-Y",
    arkit_shapes=True,
    band=BAND,
    falloff=FALLOFF,
    fit=None,
    progress=None,
) -> dict:
    """A take's expression codes (T, D) on a character mesh, in its own coordinates.

    Returns ``frames`` (T, V, 3), ``arkit_shapes`` (52, V, 3) (or (0, V, 3)), the per
    vertex ``weights`` (V,), ``residual_mm`` (T,) and the ``fit_character`` result (its
    keys: alignment, z_id, fit_error_mm, fit_points, landmarks, neck, surface). ``fit`` reuses an
    earlier ``fit_character`` result; ``progress(done, total)`` counts posed frames.
    """
    from ..tracking.bake import arkit_shape_codes

    vertices = np.asarray(vertices, np.float64)
    fit = fit or fit_character(model, content, vertices, faces, landmarks, up, forward)
    m = fit["alignment"]
    canonical = lm.apply(m, vertices)
    weights = vertex_weights(fit["surface"], canonical, fit["neck"], band, falloff)
    codes = np.asarray(z_exp, np.float32)
    if arkit_shapes:
        codes = np.concatenate([codes, arkit_shape_codes(content)])
    posed, residual = pose_points(model, fit["z_id"], canonical, codes, weights, progress)
    moved = (posed - canonical.astype(np.float32)) @ np.linalg.inv(m)[:3, :3].T
    out = (vertices + moved).astype(np.float32)  # vertices of weight 0 stay exactly
    n = len(z_exp)
    return {
        **fit,
        "frames": out[:n],
        "arkit_shapes": out[n:] if arkit_shapes else np.zeros((0, len(vertices), 3), np.float32),
        "weights": weights,
        "residual_mm": residual[:n],
    }


def character_motion(alignment, R, t, s):
    """Per-frame similarity (R (T, 3, 3), t (T, 3), s (T,)) of the take's head motion,
    relative to its mean pose, in the character's coordinates: x' = s R x + t."""
    R, t, s = (np.asarray(a, np.float64) for a in (R, t, s))
    u, _, vt = np.linalg.svd(R.sum(0))
    ref = np.eye(4)
    ref[:3, :3] = s.mean() * (u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt)
    ref[:3, 3] = t.mean(0)
    frame = np.tile(np.eye(4), (len(R), 1, 1))
    frame[:, :3, :3] = s[:, None, None] * R
    frame[:, :3, 3] = t
    m = np.linalg.inv(alignment) @ np.linalg.inv(ref) @ frame @ alignment
    scale = np.cbrt(np.linalg.det(m[:, :3, :3]))
    return m[:, :3, :3] / scale[:, None, None], m[:, :3, 3], scale
