"""Where the package, its shipped weights and the shared data live."""

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = PACKAGE_ROOT / "weights"


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repository, or ``$DPHM_SHARED_DATA``; None when absent."""
    env = os.environ.get("DPHM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(PACKAGE_ROOT.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def checkpoint_dir() -> Path:
    """The checkpoint folder: ``$DPHM_WEIGHTS`` when set, else the shipped ``weights/``."""
    env = os.environ.get("DPHM_WEIGHTS")
    return Path(env) if env else WEIGHTS_DIR


HEAD_FILES = {"nphm": "head_model.pt", "triplane": "head_model_triplane.pt"}


def head_checkpoint() -> Path:
    """The default head model: ``$DPHM_FAMILY``'s file (``HEAD_FILES``; the local-MLP family
    when unset) in ``checkpoint_dir()``."""
    from .errors import DPHMError

    family = os.environ.get("DPHM_FAMILY") or "nphm"
    if family not in HEAD_FILES:
        known = ", ".join(HEAD_FILES)
        raise DPHMError(f"DPHM_FAMILY={family!r}: not a head model family ({known})")
    return checkpoint_dir() / HEAD_FILES[family]


def companion(head_path, name: str) -> Path:
    """The checkpoint ``name`` (prior.pt, encoder.pt) trained for the head model at
    ``head_path``, beside the checkpoints: the head file's suffix after ``head_model`` names
    it (head_model.pt -> prior.pt, head_model_triplane.pt -> prior_triplane.pt)."""
    stem = Path(head_path or "head_model.pt").stem
    tail = stem[len("head_model") :] if stem.startswith("head_model") else ""
    n = Path(name)
    return checkpoint_dir() / f"{n.stem}{tail}{n.suffix}"
