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
