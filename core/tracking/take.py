"""The take file (DESIGN.md "Take"): one ``.npz`` of plain arrays, written atomically.

Per frame: expression code, pose canonical -> camera (x_cam = s R x_can + t), ARKit weights
and the fit error. Frames where no head was found carry the last good codes and pose and
``fit_error_mm`` = NaN. A take calibrated to its performer (``arkit_calibration``) holds the
calibrated weights as ``arkit`` and also ``arkit_raw`` (T, 52, the tracker's own),
``arkit_neutral`` (52, the resting bias) and ``arkit_gain`` (52). A refined take
(``dphm-take/2``) holds the correction of the identity's canonical SDF
(``model.refinement``): ``refine_index`` (M,) int32 grid vertices, ``refine_values`` (M,)
float16 canonical units, ``refine_grid`` (voxel, vertices per axis). ``dphm-take/1``
files (no refinement) still read.
"""

import json
from pathlib import Path

import numpy as np

from ..data.arkit import ARKIT_NAMES
from ..errors import DPHMError
from ..npz import load_npz, save_npz

FORMAT = "dphm-take/2"
READS = (FORMAT, "dphm-take/1")
ARRAYS = {"z_exp": 2, "R": 3, "t": 2, "s": 1, "timestamps": 1, "arkit": 2, "fit_error_mm": 1}


def write_take(
    path,
    *,
    model_sha256,
    z_id,
    z_exp,
    R,
    t,
    s,
    timestamps,
    arkit,
    intrinsics,
    source,
    quality,
    fit_error_mm,
    arkit_raw=None,
    arkit_neutral=None,
    arkit_gain=None,
    refinement=None,
) -> Path:
    """Write a take; ``intrinsics`` is a dict (stored as JSON). A calibrated take
    (``arkit_calibration``) also keeps the tracker's own weights, the neutral and the gains;
    ``refinement`` is the identity's ``model.refinement.Refinement``, if any."""
    data = {
        "format": np.array(FORMAT),
        "model_sha256": np.array(str(model_sha256)),
        "z_id": np.asarray(z_id, np.float32).reshape(-1),
        "z_exp": np.asarray(z_exp, np.float32),
        "R": np.asarray(R, np.float32),
        "t": np.asarray(t, np.float32),
        "s": np.asarray(s, np.float32),
        "timestamps": np.asarray(timestamps, np.float64),
        "arkit": np.clip(np.asarray(arkit, np.float32), 0.0, 1.0),
        "arkit_names": np.array(ARKIT_NAMES),
        "intrinsics": np.array(json.dumps(intrinsics)),
        "source": np.array(str(source)),
        "quality": np.array(str(quality)),
        "fit_error_mm": np.asarray(fit_error_mm, np.float32),
    }
    if arkit_raw is not None:
        data["arkit_raw"] = np.asarray(arkit_raw, np.float32)
        data["arkit_neutral"] = np.asarray(arkit_neutral, np.float32).reshape(52)
        data["arkit_gain"] = np.asarray(arkit_gain, np.float32).reshape(52)
    if refinement is not None:
        data.update(refinement.arrays())
    _check(data, path)
    return save_npz(path, data)


def read_take(path) -> dict:
    """The take's arrays; strings as ``str`` and ``intrinsics`` as a dict."""
    data = load_npz(path, "take")
    if str(data.get("format", "")) not in READS:
        raise DPHMError(f"{path}: not a take of format {' or '.join(READS)}")
    _check(data, path)
    for k in ("format", "model_sha256", "source", "quality"):
        data[k] = str(data[k])
    data["intrinsics"] = json.loads(str(data["intrinsics"]))
    return data


def _check(data, path) -> None:
    n = len(data["z_exp"])
    for k, ndim in ARRAYS.items():
        a = data.get(k)
        if a is None or a.ndim != ndim or len(a) != n:
            raise DPHMError(f"{path}: take array {k!r} missing or not of {n} frames")
    if data["arkit"].shape[1] != 52 or tuple(data["arkit_names"]) != ARKIT_NAMES:
        raise DPHMError(f"{path}: take ARKit weights must be the 52 Apple names in order")
    if "arkit_raw" in data and (
        data["arkit_raw"].shape != data["arkit"].shape
        or data.get("arkit_neutral", np.zeros(0)).shape != (52,)
        or data.get("arkit_gain", np.zeros(0)).shape != (52,)
    ):
        raise DPHMError(f"{path}: take ARKit calibration arrays do not match its weights")
    if "refine_index" in data:
        from ..model.refinement import SIZE

        idx, val, grid = (data.get(k) for k in ("refine_index", "refine_values", "refine_grid"))
        if (
            val is None or grid is None or grid.shape != (2,) or idx.shape != val.shape
            or int(grid[1]) != SIZE or (len(idx) and (idx.min() < 0 or idx.max() >= SIZE**3))
            or not np.isfinite(val).all()
        ):  # fmt: skip
            raise DPHMError(f"{path}: take refinement arrays are damaged")


def refinement(take: dict):
    """The take's ``model.refinement.Refinement`` of its identity, or None."""
    if "refine_index" not in take:
        return None
    from ..model.refinement import Refinement

    return Refinement.from_arrays(take)
