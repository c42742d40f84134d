"""Named expression sequences: keyframed ARKit weights, interpolated to any frame rate.

The recipes below are the source; ``python -m dphm.core.capture.sequences`` writes them as
``sequences/NAME.json`` (the shipped data files, each ``{"name", "duration", "keys": [{"t",
"w": {arkit name: weight}}]}``). A weight missing from a key is 0. Between keys each weight
follows a smoothstep. Live Link Face style CSVs load with ``load_arkit_csv``.
"""

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

from ..data.arkit import ARKIT_NAMES
from ..errors import DPHMError

FOLDER = Path(__file__).with_name("sequences")
NAMES = ("talking", "smiling", "blinking", "brows", "jaw", "asymmetric", "fast")


def _blink(t0: float, side: str = "both") -> list[tuple[float, dict]]:
    names = {
        "both": ("eyeBlinkLeft", "eyeBlinkRight"),
        "left": ("eyeBlinkLeft",),
        "right": ("eyeBlinkRight",),
    }[side]
    return [(t0, {}), (t0 + 0.08, dict.fromkeys(names, 1.0)), (t0 + 0.22, {})]


def _merge(*tracks) -> list[tuple[float, dict]]:
    """Overlay key lists: at each key time, every track contributes its interpolated value."""
    times = sorted({t for track in tracks for t, _ in track})
    keys = []
    for t in times:
        w = {}
        for track in tracks:
            w.update({k: v for k, v in _at(track, t).items() if v > 0})
        keys.append((round(t, 4), w))
    return keys


def _at(track, t):
    ts = [k[0] for k in track]
    i = int(np.searchsorted(ts, t, side="right")) - 1
    if i < 0:
        return track[0][1]
    if i >= len(track) - 1:
        return track[-1][1]
    (t0, a), (t1, b) = track[i], track[i + 1]
    s = _smooth((t - t0) / (t1 - t0))
    return {n: (1 - s) * a.get(n, 0.0) + s * b.get(n, 0.0) for n in set(a) | set(b)}


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def recipe(name: str) -> dict:
    """The keyframes of sequence ``name`` (deterministic: fixed seeds)."""
    rng = np.random.default_rng(NAMES.index(name) + 7)
    if name == "talking":
        mouth, t = [(0.0, {})], 0.2
        visemes = [
            {"jawOpen": 0.35, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},
            {"jawOpen": 0.15, "mouthFunnel": 0.5, "mouthPucker": 0.3},
            {"jawOpen": 0.05, "mouthClose": 0.3, "mouthPressLeft": 0.4, "mouthPressRight": 0.4},
            {"jawOpen": 0.25, "mouthStretchLeft": 0.4, "mouthStretchRight": 0.4},
            {
                "jawOpen": 0.1,
                "mouthRollLower": 0.4,
                "mouthUpperUpLeft": 0.2,
                "mouthUpperUpRight": 0.2,
            },
        ]
        while t < 3.8:
            v = visemes[int(rng.integers(len(visemes)))]
            mouth.append((t, {k: float(x * rng.uniform(0.7, 1.3)) for k, x in v.items()}))
            t += float(rng.uniform(0.12, 0.25))
        mouth.append((4.0, {}))
        brows = [(0.0, {}), (1.5, {"browInnerUp": 0.4}), (2.0, {}), (4.0, {})]
        keys = _merge(mouth, brows, _blink(1.2), _blink(3.1))
    elif name == "smiling":
        smile = {
            "mouthSmileLeft": 0.85,
            "mouthSmileRight": 0.85,
            "cheekSquintLeft": 0.5,
            "cheekSquintRight": 0.5,
            "eyeSquintLeft": 0.3,
            "eyeSquintRight": 0.3,
        }
        grin = {
            **smile,
            "jawOpen": 0.2,
            "mouthUpperUpLeft": 0.4,
            "mouthUpperUpRight": 0.4,
            "mouthDimpleLeft": 0.3,
            "mouthDimpleRight": 0.3,
        }
        keys = _merge(
            [(0.0, {}), (0.6, smile), (1.4, smile), (1.8, grin), (2.4, grin), (3.0, {})],
            _blink(2.0),
        )
    elif name == "blinking":
        keys = _merge(
            _blink(0.3),
            _blink(1.0),
            _blink(1.5, "left"),
            _blink(2.1, "right"),
            [
                (2.5, {}),
                (2.8, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
                (3.2, {}),
                (3.4, {"eyeWideLeft": 0.6, "eyeWideRight": 0.6}),
                (3.8, {}),
            ],
        )
    elif name == "brows":
        keys = [
            (0.0, {}),
            (0.5, {"browInnerUp": 0.9}),
            (1.0, {}),
            (1.5, {"browOuterUpLeft": 0.8, "browOuterUpRight": 0.8, "browInnerUp": 0.5}),
            (2.0, {}),
            (2.5, {"browDownLeft": 0.9, "browDownRight": 0.9}),
            (3.0, {}),
            (3.4, {"browOuterUpLeft": 0.9}),
            (3.8, {"browDownRight": 0.7}),
            (4.2, {}),
        ]
    elif name == "jaw":
        keys = [
            (0.0, {}),
            (0.8, {"jawOpen": 0.8}),
            (1.4, {"jawOpen": 0.8}),
            (2.0, {}),
            (2.5, {"jawLeft": 0.6, "jawOpen": 0.15}),
            (3.0, {"jawRight": 0.6, "jawOpen": 0.15}),
            (3.5, {"jawForward": 0.6, "jawOpen": 0.2}),
            (4.0, {}),
        ]
    elif name == "asymmetric":
        keys = [
            (0.0, {}),
            (0.6, {"mouthSmileLeft": 0.9, "cheekSquintLeft": 0.5}),
            (1.1, {}),
            (1.6, {"browOuterUpRight": 0.9, "eyeWideRight": 0.5}),
            (2.1, {}),
            (2.5, {"eyeBlinkLeft": 1.0, "mouthSmileLeft": 0.4}),
            (2.8, {}),
            (3.3, {"mouthLeft": 0.7, "noseSneerRight": 0.6}),
            (3.8, {"mouthFrownRight": 0.7, "mouthPressLeft": 0.5}),
            (4.3, {}),
        ]
    elif name == "fast":
        pool = [
            {"jawOpen": 0.8},
            {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
            {"mouthPucker": 1.0},
            {"browInnerUp": 1.0, "eyeWideLeft": 0.8, "eyeWideRight": 0.8},
            {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
            {"mouthFunnel": 0.9, "jawOpen": 0.3},
            {
                "browDownLeft": 1.0,
                "browDownRight": 1.0,
                "noseSneerLeft": 0.7,
                "noseSneerRight": 0.7,
            },
            {"cheekPuff": 0.9},
            {},
        ]
        keys, t = [(0.0, {})], 0.0
        while t < 3.0:
            t += float(rng.uniform(0.07, 0.13))
            keys.append((round(t, 4), dict(pool[int(rng.integers(len(pool)))])))
    else:
        raise DPHMError(f"unknown sequence {name!r}; choose from {', '.join(NAMES)}")
    keys = [(float(t), {k: round(float(v), 4) for k, v in w.items()}) for t, w in keys]
    return {"name": name, "duration": keys[-1][0], "keys": [{"t": t, "w": w} for t, w in keys]}


def write_files(folder: Path = FOLDER) -> None:
    folder.mkdir(exist_ok=True)
    for name in NAMES:
        (folder / f"{name}.json").write_text(json.dumps(recipe(name), indent=1) + "\n")


def load(name: str) -> dict:
    path = FOLDER / f"{name}.json"
    if not path.is_file():
        raise DPHMError(f"unknown sequence {name!r}; choose from {', '.join(NAMES)}")
    return json.loads(path.read_text())


def sample(seq: dict, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames, 52) ARKit weights at frame times i / fps, looping past the end."""
    keys = seq["keys"]
    times = np.array([k["t"] for k in keys])
    table = np.array([[k["w"].get(n, 0.0) for n in ARKIT_NAMES] for k in keys])
    t = np.arange(n_frames) / fps
    if seq["duration"] > 0:
        t = np.mod(t, seq["duration"])
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    j = np.minimum(i + 1, len(times) - 1)
    span = np.where(j > i, times[j] - times[i], 1.0)
    s = _smooth((t - times[i]) / span)[:, None]
    return ((1 - s) * table[i] + s * table[j]).astype(np.float32)


def _normalise(name: str) -> str:
    n = name.strip().lower().replace("-", "").replace(" ", "")
    n = re.sub(r"_?l$", "left", n) if re.search(r"_l$", n) else n
    n = re.sub(r"_?r$", "right", n) if re.search(r"_r$", n) else n
    return n.replace("_", "")


def load_arkit_csv(path) -> tuple[np.ndarray | None, np.ndarray]:
    """(times in seconds or None, (T, 52) weights) from a Live Link Face style CSV.

    Columns are matched to ARKit names case-insensitively, with ``Left``/``Right`` or
    ``_L``/``_R`` suffixes; a ``time`` column (seconds) is used when present, else one row
    per frame. Unknown columns (Timecode, head rotation ...) are ignored.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise DPHMError(f"{path}: cannot read ARKit CSV ({e.strerror})") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise DPHMError(f"{path}: not a text CSV ({e})") from e
    if len(rows) < 2:
        raise DPHMError(f"{path}: ARKit CSV has no data rows")
    lookup = {_normalise(n): i for i, n in enumerate(ARKIT_NAMES)}
    header = rows[0]
    cols = {j: lookup[_normalise(h)] for j, h in enumerate(header) if _normalise(h) in lookup}
    if not cols:
        raise DPHMError(f"{path}: no column is named like an ARKit blendshape (e.g. jawOpen)")
    time_col = next((j for j, h in enumerate(header) if h.strip().lower() == "time"), None)
    weights = np.zeros((len(rows) - 1, 52), np.float32)
    times = np.zeros(len(rows) - 1)
    for r, row in enumerate(rows[1:]):
        try:
            for j, k in cols.items():
                weights[r, k] = float(row[j])
            if time_col is not None:
                times[r] = float(row[time_col])
        except (ValueError, IndexError) as e:
            raise DPHMError(f"{path}: row {r + 2} is not numeric ({e})") from e
    return (times if time_col is not None else None), np.clip(weights, 0.0, 1.0)


def resample(times: np.ndarray | None, weights: np.ndarray, n_frames: int, fps: float):
    """(n_frames, 52) weights at i / fps from a CSV's rows (linear in time, held at the ends)."""
    if times is None:
        idx = np.minimum(np.arange(n_frames), len(weights) - 1)
        return weights[idx]
    t = times[0] + np.arange(n_frames) / fps
    return np.stack([np.interp(t, times, weights[:, k]) for k in range(52)], 1).astype(np.float32)


if __name__ == "__main__":
    write_files(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
