"""Choosing the identity model's anchors on the mean head: symmetric farthest-point samples.

Anchors are ICT vertices of the skin, so their positions on any training head supervise
the anchor prediction and serve the tracker as landmarks. Anchors with |x| above
``MIDLINE`` come in left/right mirror pairs; the others sit on the midline.
"""

import numpy as np
from scipy.spatial import cKDTree

MIDLINE = 0.012  # metres


def farthest_points(points: np.ndarray, k: int, start: int) -> np.ndarray:
    chosen = [start]
    d = np.linalg.norm(points - points[start], axis=1)
    for _ in range(k - 1):
        i = int(np.argmax(d))
        chosen.append(i)
        d = np.minimum(d, np.linalg.norm(points - points[i], axis=1))
    return np.asarray(chosen)


def symmetric_anchors(vertices: np.ndarray, candidates: np.ndarray, n_half: int):
    """Pick anchors among candidate vertex ids of a roughly symmetric mesh (x = left/right).

    Returns vertex ids (A,) and ``mirror`` (A,): the index of each anchor's mirror partner
    within the anchors, or -1 for midline anchors. Partners are adjacent: (left, right).
    """
    cand = candidates[vertices[candidates, 0] >= 0.0]
    nose = cand[np.argmax(vertices[cand, 2])]
    picks = cand[farthest_points(vertices[cand], n_half, int(np.flatnonzero(cand == nose)[0]))]
    tree = cKDTree(vertices[candidates])
    ids, mirror = [], []
    for v in picks:
        p = vertices[v]
        if abs(p[0]) < MIDLINE:
            ids.append(int(v))
            mirror.append(-1)
            continue
        _, j = tree.query(p * np.array([-1.0, 1.0, 1.0]))
        ids += [int(v), int(candidates[j])]
        mirror += [len(ids) - 1, len(ids) - 2]
    return np.asarray(ids), np.asarray(mirror)
