"""The project's surface metrics: Chamfer-L1, normal consistency and F-scores.

Every benchmark calls these. Inputs are in metres; distances are reported in
millimetres. Both surfaces are sampled uniformly by area (n points each) and compared
by nearest neighbours:

- accuracy: distance of each predicted point to the nearest ground-truth point;
  completeness: the other way round.
- cd_l1_mm = (mean accuracy + mean completeness) / 2, in mm.
- nc = mean |n . n'| over nearest-neighbour pairs, averaged over both directions.
- f1mm, f5mm: harmonic mean of precision (share of accuracies < t) and recall
  (share of completenesses < t) at t = 1 mm and 5 mm.

Face region: the ground truth gives it as a vertex mask; its points are sampled on the
triangles whose vertices are all in the mask. A prediction may have another topology
(marching cubes), so it is cropped by proximity: a predicted point belongs to the face
when its nearest ground-truth surface point (a dense whole-head sample) lies in the face
region and is closer than FACE_CAP. Points further away are gross artefacts that the
whole-head metrics report; the cap keeps them, and surfaces the ground truth lacks
(closed mouth or neck caps, say), from being charged to the face.
"""

import numpy as np
from scipy.spatial import cKDTree

from .sampling import region_triangles, sample_surface

THRESHOLDS_MM = (1.0, 5.0)
FACE_CAP = 0.01  # metres


def _nearest(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cKDTree(dst).query(src, workers=-1)


def point_metrics(
    pred_points: np.ndarray, pred_normals: np.ndarray, gt_points: np.ndarray, gt_normals: np.ndarray
) -> dict[str, float]:
    """Metrics between two oriented point samples: cd_l1_mm, nc, f1mm, f5mm."""
    acc, to_gt = _nearest(pred_points, gt_points)
    comp, to_pred = _nearest(gt_points, pred_points)
    acc_mm, comp_mm = acc * 1000.0, comp * 1000.0
    nc_pred = np.abs(np.sum(pred_normals * gt_normals[to_gt], axis=1)).mean()
    nc_gt = np.abs(np.sum(gt_normals * pred_normals[to_pred], axis=1)).mean()
    out = {"cd_l1_mm": 0.5 * (acc_mm.mean() + comp_mm.mean()), "nc": 0.5 * (nc_pred + nc_gt)}
    for t in THRESHOLDS_MM:
        precision, recall = (acc_mm < t).mean(), (comp_mm < t).mean()
        f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        out[f"f{t:g}mm"] = f
    return {k: float(v) for k, v in out.items()}


def compare_meshes(
    pred_v: np.ndarray,
    pred_f: np.ndarray,
    gt_v: np.ndarray,
    gt_f: np.ndarray,
    gt_region_mask: np.ndarray | None = None,
    n: int = 100_000,
    seed: int = 0,
) -> dict[str, float]:
    """Compare a predicted mesh with the ground truth (triangles, metres).

    Returns cd_l1_mm_head, nc_head, f1mm_head, f5mm_head and, when gt_region_mask (a
    (V_gt,) bool face mask) is given, the same four with the suffix _face.
    """
    pred_f = np.asarray(pred_f, dtype=np.int64)
    gt_f = np.asarray(gt_f, dtype=np.int64)
    pred_pts, pred_nrm, _, _ = sample_surface(pred_v, pred_f, n, np.random.default_rng([seed, 0]))
    gt_pts, gt_nrm, gt_tri, _ = sample_surface(gt_v, gt_f, n, np.random.default_rng([seed, 1]))
    out = {f"{k}_head": v for k, v in point_metrics(pred_pts, pred_nrm, gt_pts, gt_nrm).items()}
    if gt_region_mask is None:
        return out

    gt_tree = cKDTree(gt_pts)
    gt_in_face = region_triangles(gt_f, gt_region_mask)[gt_tri]

    def in_face(points: np.ndarray) -> np.ndarray:
        dist, idx = gt_tree.query(points, workers=-1)
        return gt_in_face[idx] & (dist < FACE_CAP)

    # Keep predicted triangles with a corner or centroid in the face, sample n points on
    # them, then crop those points one by one.
    pv = np.asarray(pred_v, dtype=np.float64)
    near = in_face(pv)[pred_f].any(axis=1) | in_face(pv[pred_f].mean(axis=1))
    pts = np.empty((0, 3))
    if near.any():
        rng = np.random.default_rng([seed, 2])
        pts, nrm, _, _ = sample_surface(pred_v, pred_f[near], n, rng)
        inside = in_face(pts)
        pts, nrm = pts[inside], nrm[inside]
    if len(pts) == 0:
        return out | {"cd_l1_mm_face": np.inf, "nc_face": 0.0, "f1mm_face": 0.0, "f5mm_face": 0.0}
    gt_pts, gt_nrm, _, _ = sample_surface(
        gt_v, gt_f, n, np.random.default_rng([seed, 3]), gt_region_mask
    )
    face = point_metrics(pts, nrm, gt_pts, gt_nrm)
    return out | {f"{k}_face": v for k, v in face.items()}
