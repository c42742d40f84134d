"""The one kind of frame the tracker sees, and the interface every depth source offers.

Depth is in metres (float32), 0 where there is no reading; pixel (u, v) with depth z
back-projects to ((u - cx) z / fx, (v - cy) z / fy, z) in OpenCV camera space
(x right, y down, z forward). Distortion, where known, is OpenCV's rational model
``[k1, k2, p1, p2, k3, k4, k5, k6]``; the depth image itself is not undistorted.
"""

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DPHMError


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] = ()

    def __post_init__(self):
        """Reject what no camera has: NaN or non-positive focal lengths, an empty image."""
        if not all(np.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy)):
            raise ValueError(f"fx, fy, cx, cy must be numbers, got {self.fx}, {self.fy}, "
                             f"{self.cx}, {self.cy}")  # fmt: skip
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if not all(np.isfinite(self.distortion)):
            raise ValueError("distortion coefficients must be numbers")

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["distortion"] = list(self.distortion)
        if not d["distortion"]:
            del d["distortion"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Intrinsics":
        return cls(
            float(d["fx"]),
            float(d["fy"]),
            float(d["cx"]),
            float(d["cy"]),
            int(d["width"]),
            int(d["height"]),
            tuple(float(x) for x in d.get("distortion") or ()),
        )


@dataclass
class DepthFrame:
    depth: np.ndarray  # (H, W) float32 metres, 0 = no reading
    intrinsics: Intrinsics
    timestamp: float  # seconds
    index: int = 0
    color: np.ndarray | None = None  # (Hc, Wc, 3) uint8 RGB
    color_intrinsics: Intrinsics | None = None
    depth_to_color: np.ndarray | None = None  # (4, 4) metres, depth camera -> colour camera

    @property
    def valid(self) -> np.ndarray:
        return self.depth > 0

    def points(self) -> np.ndarray:
        """(N, 3) camera-space points of the valid pixels (pinhole back-projection)."""
        return backproject(self.depth, self.intrinsics)


def backproject(depth: np.ndarray, intr: Intrinsics, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) points of the pixels with depth > 0 (and mask), row-major order."""
    m = depth > 0 if mask is None else (depth > 0) & mask
    v, u = np.nonzero(m)
    z = depth[v, u].astype(np.float64)
    return np.stack([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z], 1)


class DepthSource:
    """Base class of depth sources: iterate frames; ``len`` and ``[i]`` where the format allows.

    ``length`` is None when unknown (live cameras); ``metadata`` holds what the format tells
    (device, depth mode, serial, ground truth folder ...).
    """

    def __init__(
        self,
        path: str,
        intrinsics: Intrinsics | None = None,
        fps: float = 30.0,
        metadata: dict | None = None,
    ):
        self.path = str(path)
        self.intrinsics = intrinsics
        self.fps = fps
        self.metadata = dict(metadata or {})

    @property
    def length(self) -> int | None:
        return None

    def __len__(self) -> int:
        n = self.length
        if n is None:
            raise TypeError(f"{self.path}: length unknown for a live source")
        return n

    def __iter__(self) -> Iterator[DepthFrame]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> DepthFrame:
        raise DPHMError(f"{self.path}: this source has no random access")

    def with_color(self, frame: DepthFrame, rgb: np.ndarray | None) -> DepthFrame:
        """``frame`` with this source's colour image ``rgb`` and its calibration."""
        frame.color = rgb
        frame.color_intrinsics = getattr(self, "color_intrinsics", None)
        frame.depth_to_color = getattr(self, "depth_to_color", None)
        return frame

    def close(self) -> None:
        """Release files or devices; sources are also context managers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_units(depth_m: np.ndarray, where: str) -> None:
    """Raise when depth values cannot be metres of a face capture (a wrong depth scale)."""
    z = depth_m[depth_m > 0]
    if z.size == 0:
        return
    med = float(np.median(z))
    if med < 0.05:
        raise DPHMError(
            f"{where}: depth values look like metres stored as millimetres "
            f"(median {med * 1000:.3g} mm after scaling); check depth_scale"
        )
    if med > 50:
        raise DPHMError(
            f"{where}: depth values look like millimetres stored as metres "
            f"(median {med:.4g} m after scaling); check depth_scale"
        )
