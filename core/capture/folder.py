"""Capture folders (DESIGN.md): ``intrinsics.json``, ``depth/NNNNNN.png`` (uint16), optional
``color/NNNNNN.jpg`` and ``ground_truth/``.

Beyond the contract, ``intrinsics.json`` may hold ``"color"`` (colour intrinsics and
``"depth_to_color"``, a 4x4 row-major list) and the folder may hold ``timestamps.txt`` (one
time in seconds per depth file, in order); without it frame n is at n / fps.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DPHMError
from .frame import DepthFrame, DepthSource, Intrinsics, check_units
from .warn import warn

NAME = re.compile(r"^(\d+)\.png$")


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            a = np.asarray(im)
    except (OSError, ValueError) as e:
        raise DPHMError(f"{path}: cannot read depth PNG ({e})") from e
    if a.ndim != 2 or a.dtype not in (np.uint16, np.int32, np.uint8):
        raise DPHMError(f"{path}: depth PNG must be single-channel 16-bit, got {a.dtype} {a.shape}")
    return a.astype(np.uint16)


class CaptureFolder(DepthSource):
    def __init__(self, path):
        root = Path(path)
        intr_path = root / "intrinsics.json"
        if not intr_path.is_file():
            raise DPHMError(f"{root}: not a capture folder (no intrinsics.json)")
        try:
            meta = json.loads(intr_path.read_text())
            intr = Intrinsics.from_dict(meta)
        except (ValueError, KeyError, TypeError) as e:
            raise DPHMError(f"{intr_path}: bad intrinsics: {e}") from e
        try:
            self.depth_scale = float(meta.get("depth_scale", 0.001))
            fps = float(meta.get("fps", 30))
            c = meta.get("color")
            self.color_intrinsics = Intrinsics.from_dict(c) if c else None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DPHMError(f"{intr_path}: bad intrinsics: {e}") from e
        if not (np.isfinite(self.depth_scale) and self.depth_scale > 0):
            raise DPHMError(
                f"{intr_path}: depth_scale {self.depth_scale} must be metres per unit "
                "(0.001 for millimetre PNGs)"
            )
        if not (np.isfinite(fps) and fps > 0):
            raise DPHMError(f"{intr_path}: fps {fps} must be a positive number")
        files = sorted(
            (
                (int(m.group(1)), p)
                for p in (root / "depth").glob("*.png")
                if (m := NAME.match(p.name))
            ),
            key=lambda x: x[0],
        )
        if not files:
            raise DPHMError(f"{root}: capture folder holds no depth/NNNNNN.png frames")
        numbers = [n for n, _ in files]
        gaps = [
            f"{a + 1}-{b - 1}" if b - a > 2 else str(a + 1)
            for a, b in zip(numbers, numbers[1:], strict=False)
            if b - a > 1
        ]
        if gaps:
            warn(
                f"{root / 'depth'}: frame numbering has gaps (missing {', '.join(gaps[:5])}"
                f"{' ...' if len(gaps) > 5 else ''}); reading the frames that exist"
            )
        self._numbers, self._files = numbers, [p for _, p in files]
        ts = root / "timestamps.txt"
        if ts.is_file():
            self._times = np.loadtxt(ts, ndmin=1)
            if len(self._times) != len(files):
                raise DPHMError(f"{ts}: {len(self._times)} times for {len(files)} depth frames")
        else:
            self._times = np.asarray(numbers, float) / fps
        self.depth_to_color = (
            np.asarray(c["depth_to_color"]) if c and "depth_to_color" in c else None
        )
        gt = root / "ground_truth"
        super().__init__(str(root), intr, fps, {"ground_truth": str(gt)} if gt.is_dir() else {})

    @property
    def length(self) -> int:
        return len(self._files)

    def __getitem__(self, i: int) -> DepthFrame:
        path = self._files[i]
        i %= len(self._files)
        raw = _read_png(path)
        if raw.shape != (self.intrinsics.height, self.intrinsics.width):
            raise DPHMError(
                f"{path}: image is {raw.shape[1]}x{raw.shape[0]}, intrinsics.json "
                f"says {self.intrinsics.width}x{self.intrinsics.height}"
            )
        depth = raw.astype(np.float32) * np.float32(self.depth_scale)
        if i == 0:
            check_units(depth, str(path))
        frame = DepthFrame(depth, self.intrinsics, float(self._times[i]), i)
        jpg = Path(self.path) / "color" / (path.stem + ".jpg")
        if self.color_intrinsics is not None and jpg.is_file():
            with Image.open(jpg) as im:
                self.with_color(frame, np.asarray(im.convert("RGB")))
        return frame

    def __iter__(self):
        for i in range(len(self._files)):
            yield self[i]


class FolderWriter:
    """Write frames into a capture folder; ``intrinsics.json`` is written last (atomically)."""

    def __init__(self, path, intrinsics: Intrinsics, fps: float = 30, depth_scale: float = 0.001):
        self.root = Path(path)
        (self.root / "depth").mkdir(parents=True, exist_ok=True)
        self.meta = {**intrinsics.to_dict(), "depth_scale": depth_scale, "fps": fps}
        self.scale = depth_scale
        self.times: list[float] = []

    def write(self, frame: DepthFrame) -> None:
        n = len(self.times)
        raw = np.round(frame.depth / self.scale)
        if raw.max(initial=0) > 65535:
            raise DPHMError(
                f"{self.root}: depth {raw.max() * self.scale:.3g} m does not fit uint16 "
                f"at depth_scale {self.scale}"
            )
        _atomic_png(self.root / "depth" / f"{n:06d}.png", raw.astype(np.uint16))
        if frame.color is not None:
            (self.root / "color").mkdir(exist_ok=True)
            Image.fromarray(frame.color).save(self.root / "color" / f"{n:06d}.jpg", quality=95)
            if "color" not in self.meta and frame.color_intrinsics is not None:
                c = frame.color_intrinsics.to_dict()
                if frame.depth_to_color is not None:
                    c["depth_to_color"] = np.asarray(frame.depth_to_color).tolist()
                self.meta["color"] = c
        self.times.append(frame.timestamp)

    def close(self) -> None:
        fps = self.meta["fps"]
        if self.times and not np.allclose(self.times, np.arange(len(self.times)) / fps, atol=1e-6):
            np.savetxt(self.root / "timestamps.txt", self.times, fmt="%.9f")
        tmp = self.root / "intrinsics.json.partial"
        tmp.write_text(json.dumps(self.meta, indent=2))
        os.replace(tmp, self.root / "intrinsics.json")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _atomic_png(path: Path, image: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".partial")
    Image.fromarray(image).save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)
