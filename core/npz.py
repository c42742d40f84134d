"""``.npz`` files of plain arrays: written atomically, read with one clear error."""

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import DPHMError


def save_npz(path, arrays: dict) -> Path:
    """Write ``arrays`` to ``path`` under a temporary name, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def load_npz(path, what: str) -> dict:
    """All arrays of ``path`` (no pickles); ``what`` names the kind of file in errors."""
    path = Path(path)
    if not path.is_file():
        raise DPHMError(f"{path}: {what} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DPHMError(f"{path}: not a readable {what}, damaged or truncated ({e})") from e
