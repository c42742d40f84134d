"""The synthetic head corpus: fixed train / held-out splits and the canonical head space.

Identities are ICT identity weights drawn from N(0, 1) over the 100 modes; each split has
its own seed stream, so held-out identities and expression samples never enter training.

Canonical head space (the model's own): ICT's frame (x to the head's left, y up, z out of
the face) shifted by ``CANONICAL_CENTER`` and divided by ``CANONICAL_SCALE`` metres, so an
average head spans about [-0.85, 0.85] and every head fits in the unit cube [-1, 1]^3.
"""

import numpy as np

CANONICAL_CENTER = np.array([0.0, -0.024, 0.019], np.float32)
CANONICAL_SCALE = 0.2

SEED_TRAIN_ID, SEED_HELDOUT_ID = 1_000, 9_000
SEED_TRAIN_EXP, SEED_HELDOUT_EXP = 2_000, 8_000
N_HELDOUT_ID = 16


def to_canonical(p_ict_m: np.ndarray) -> np.ndarray:
    return ((p_ict_m - CANONICAL_CENTER) / CANONICAL_SCALE).astype(np.float32)


def from_canonical(p: np.ndarray) -> np.ndarray:
    return (p * CANONICAL_SCALE + CANONICAL_CENTER).astype(np.float32)


def identity_weights(split: str, n: int, n_modes: int = 100) -> np.ndarray:
    """(n, n_modes) identity weights of a split ('train' or 'heldout')."""
    seed = {"train": SEED_TRAIN_ID, "heldout": SEED_HELDOUT_ID}[split]
    return np.random.default_rng(seed).standard_normal((n, n_modes)).astype(np.float32)


def expression_weights(split: str, names, n: int) -> np.ndarray:
    from .expressions import sample_expressions

    seed = {"train": SEED_TRAIN_EXP, "heldout": SEED_HELDOUT_EXP}[split]
    w = sample_expressions(names, n, seed)
    if split == "train":
        w[0] = 0.0  # the neutral is always part of training
    return w
