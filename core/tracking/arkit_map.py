"""Expression code -> 52 ARKit weights, learned on the synthetic corpus.

Every expression code of the checkpoint's codebook was trained on an ICT expression of
known weights (``exp_weights``). A ridge regression from the standardised code to those
57 ICT weights, then ICT -> ARKit (``data.arkit``) and a clip to [0, 1], gives the map.
"""

import numpy as np

from ..data.arkit import ICT_EXPRESSION_NAMES, ict_to_arkit_matrix


class ArkitMap:
    def __init__(self, codes: np.ndarray, ict_weights: np.ndarray, ridge: float = 1e-2):
        codes = np.asarray(codes, np.float64)
        self.mean, self.std = codes.mean(0), codes.std(0) + 1e-6
        x = np.concatenate([(codes - self.mean) / self.std, np.ones((len(codes), 1))], 1)
        reg = ridge * len(codes) * np.eye(x.shape[1])
        reg[-1, -1] = 0.0
        self.W = np.linalg.solve(x.T @ x + reg, x.T @ np.asarray(ict_weights, np.float64))
        self.to_arkit = ict_to_arkit_matrix(ICT_EXPRESSION_NAMES).astype(np.float64)

    @classmethod
    def from_content(cls, content) -> "ArkitMap":
        books = content["codebooks"]
        return cls(books["exp"].numpy(), books["exp_weights"].numpy())

    def __call__(self, z_exp: np.ndarray) -> np.ndarray:
        """(T, 52) ARKit weights in [0, 1] for codes (T, D)."""
        z = np.atleast_2d(np.asarray(z_exp, np.float64))
        x = np.concatenate([(z - self.mean) / self.std, np.ones((len(z), 1))], 1)
        return np.clip(np.clip(x @ self.W, 0, 1) @ self.to_arkit.T, 0, 1).astype(np.float32)


def codes_for_arkit(targets, weights, codes, smooth=1e-2):
    """(T, D) expression codes and (T, 52) fitted weights for target ARKit weights (T, 52).

    ``weights`` (M, 52) are the ARKit weights each codebook entry was trained on, ``codes``
    (M, D) the entries. Per frame: non-negative mixing weights that sum to one and best
    reproduce the target, pulled by ``smooth`` toward the previous frame's mix.
    """
    from scipy.optimize import nnls

    m = len(weights)
    a = np.vstack([weights.T, np.sqrt(smooth) * np.eye(m), 10.0 * np.ones((1, m))])
    prev = np.eye(m)[np.argmin(np.abs(weights).sum(1))]  # start from the most neutral entry
    mixes = []
    for target in targets:
        prev, _ = nnls(a, np.concatenate([target, np.sqrt(smooth) * prev, [10.0]]))
        mixes.append(prev)
    mixes = np.stack(mixes)
    return (mixes @ codes).astype(np.float32), (mixes @ weights).astype(np.float32)


def codebook_arkit(content) -> tuple[np.ndarray, np.ndarray]:
    """(ARKit weights (M, 52), codes (M, D)) of the checkpoint's expression codebook."""
    books = content["codebooks"]
    to_arkit = ict_to_arkit_matrix(ICT_EXPRESSION_NAMES)
    return books["exp_weights"].float().numpy() @ to_arkit.T, books["exp"].float().numpy()
