"""ARKit weights as a character wants them: the performer's resting bias removed, a gain per
shape, and optionally the curves smoothed by a One-Euro filter. numpy only (Blender's side
uses it too).

Calibration: ``w' = clip((w - n) / (1 - n) * g, 0, 1)`` per shape, where ``n`` is the
median weight over a neutral clip (what the tracker reads on this performer's resting face)
and ``g`` the shape's gain. Dividing by ``1 - n`` keeps the full range reachable.

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass filter whose cutoff
rises with the signal's speed: ``fc = min_cutoff + beta * |dw/dt|``; still curves lose
their jitter, fast ones (a blink) keep their timing.
"""

import math

import numpy as np

from ..data.arkit import ARKIT_NAMES
from ..errors import DPHMError

MAX_NEUTRAL = 0.95  # a shape already at 1 on the resting face cannot be calibrated away


def neutral_weights(arkit: np.ndarray, frames: range) -> np.ndarray:
    """(52,) median weights over ``frames`` of a (T, 52) track: the resting face."""
    idx = [i for i in frames if 0 <= i < len(arkit)]
    if not idx:
        raise DPHMError(f"--neutral {frames.start}:{frames.stop}: no such frames in the take "
                        f"({len(arkit)} frames)")  # fmt: skip
    return np.median(np.asarray(arkit, np.float64)[idx], axis=0).astype(np.float32)


def calibrate(arkit: np.ndarray, neutral=None, gain=None) -> np.ndarray:
    """(T, 52) weights with the resting bias ``neutral`` (52,) removed and ``gain`` applied."""
    w = np.asarray(arkit, np.float64)
    n = np.zeros(52) if neutral is None else np.asarray(neutral, np.float64)
    n = np.clip(n, 0, MAX_NEUTRAL)
    g = np.ones(52) if gain is None else np.asarray(gain, np.float64)
    return np.clip((w - n) / (1.0 - n) * g, 0.0, 1.0).astype(np.float32)


def parse_gains(specs) -> np.ndarray:
    """(52,) gains from ``NAME=G`` items; ``eyeBlink=1.3`` sets both eyeBlinkLeft and Right."""
    gain = np.ones(52, np.float32)
    lower = [n.lower() for n in ARKIT_NAMES]
    for spec in specs or ():
        name, _, value = spec.partition("=")
        try:
            g = float(value)
        except ValueError:
            raise DPHMError(f"--gain {spec!r}: expected NAME=NUMBER, e.g. jawOpen=1.2") from None
        if not (math.isfinite(g) and g >= 0):
            raise DPHMError(f"--gain {spec!r}: the gain must be a number >= 0")
        key = name.strip().lower()
        hits = [i for i, n in enumerate(lower) if n == key or n in (key + "left", key + "right")]
        if not hits:
            raise DPHMError(f"--gain {spec!r}: {name!r} is not an ARKit shape (e.g. jawOpen)")
        gain[hits] = g
    return gain


def one_euro(values: np.ndarray, timestamps: np.ndarray, min_cutoff: float = 1.5,
             beta: float = 0.5, d_cutoff: float = 1.0) -> np.ndarray:  # fmt: skip
    """(T, K) curves filtered along T; ``timestamps`` in seconds, cutoffs in Hz."""
    x = np.asarray(values, np.float64)
    t = np.asarray(timestamps, np.float64)
    if len(x) < 2:
        return x.astype(np.float32)
    if min_cutoff <= 0 or beta < 0 or d_cutoff <= 0:
        raise DPHMError("One-Euro filter: min_cutoff and d_cutoff must be > 0, beta >= 0")

    def alpha(cutoff, dt):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    out = np.empty_like(x)
    out[0] = x[0]
    dx = np.zeros(x.shape[1:])
    for i in range(1, len(x)):
        dt = t[i] - t[i - 1]
        if not dt > 0:  # a repeated or missing time stamp: hold the last value's rate
            dt = 1.0 / 30
        a_d = alpha(d_cutoff, dt)
        dx = a_d * (x[i] - out[i - 1]) / dt + (1 - a_d) * dx
        a = alpha(min_cutoff + beta * np.abs(dx), dt)
        out[i] = a * x[i] + (1 - a) * out[i - 1]
    return out.astype(np.float32)


def calibrated_take(arrays: dict, neutral: range | None, gain=None) -> dict:
    """Take arrays (``take_arrays``) with ``arkit`` calibrated; the tracker's own weights,
    the neutral and the gains are kept as ``arkit_raw``, ``arkit_neutral``, ``arkit_gain``."""
    if neutral is None and gain is None:
        return arrays
    raw = np.asarray(arrays.get("arkit_raw", arrays["arkit"]), np.float32)
    n = neutral_weights(raw, neutral) if neutral is not None else np.zeros(52, np.float32)
    g = np.ones(52, np.float32) if gain is None else np.asarray(gain, np.float32)
    return {**arrays, "arkit": calibrate(raw, n, g), "arkit_raw": raw, "arkit_neutral": n,
            "arkit_gain": g}  # fmt: skip


def smoothed(arkit: np.ndarray, fps: float, settings) -> np.ndarray:
    """The ARKit curves for a bake: One-Euro filtered when the scene's settings ask
    (``smooth_arkit``, ``smooth_min_cutoff``, ``smooth_beta``), else as they are."""
    if not settings.smooth_arkit:
        return np.asarray(arkit, np.float32)
    t = np.arange(len(arkit)) / float(fps)
    out = one_euro(arkit, t, settings.smooth_min_cutoff, settings.smooth_beta)
    return np.clip(out, 0.0, 1.0)


def neutral_range(spec: str | None) -> range | None:
    """``--neutral N`` (one frame) or ``A:B`` (a neutral clip) of the take's frames."""
    if not spec:
        return None
    a, sep, b = spec.partition(":")
    try:
        start = int(a)
        stop = int(b) if sep else start + 1
    except ValueError:
        raise DPHMError(f"--neutral {spec!r}: expected a frame N or a clip A:B") from None
    if start < 0 or stop <= start:
        raise DPHMError(f"--neutral {spec}: the clip is empty (A:B needs 0 <= A < B)")
    return range(start, stop)
