"""Intel RealSense: live cameras and recordings (``.bag``, ROS 2 ``.db3``) through pyrealsense2.

Depth scale and intrinsics come from the device or the file. Only ``open_pipeline`` touches
the device; ``to_frame`` turns one pyrealsense2 depth frame into a ``DepthFrame``.
"""

from pathlib import Path

import numpy as np

from ..errors import DPHMError
from .frame import DepthFrame, DepthSource, Intrinsics, check_units
from .sdk import load
from .warn import warn

HINT = "pip install pyrealsense2, and libusb-1.0-0 (Debian/Ubuntu: apt-get install libusb-1.0-0)"


def _rs():
    return load("pyrealsense2", "Intel RealSense support", HINT)


def intrinsics_of(rs_intr) -> Intrinsics:
    """Our Intrinsics from a pyrealsense2 ``intrinsics`` (Brown-Conrady coeffs k1 k2 p1 p2 k3)."""
    coeffs = tuple(float(c) for c in rs_intr.coeffs)
    return Intrinsics(
        float(rs_intr.fx),
        float(rs_intr.fy),
        float(rs_intr.ppx),
        float(rs_intr.ppy),
        int(rs_intr.width),
        int(rs_intr.height),
        coeffs if any(coeffs) else (),
    )


def to_frame(depth_frame, scale: float, intr: Intrinsics, index: int, where: str) -> DepthFrame:
    raw = np.asanyarray(depth_frame.get_data())
    depth = raw.astype(np.float32) * np.float32(scale)
    if index == 0:
        check_units(depth, where)
    return DepthFrame(depth, intr, depth_frame.get_timestamp() * 1e-3, index)


def open_pipeline(path: str | None, fps: int = 30):
    """Start a pipeline on a ``.bag`` file (``path``) or the first connected camera."""
    rs = _rs()
    pipe, cfg = rs.pipeline(), rs.config()
    if path:
        cfg.enable_device_from_file(path, repeat_playback=False)
        cfg.enable_stream(rs.stream.depth)
    else:
        if not rs.context().query_devices().size():
            raise DPHMError(f"no Intel RealSense camera connected (pyrealsense2 sees none); {HINT}")
        cfg.enable_stream(rs.stream.depth, 640, 480, rs.format.z16, fps)
    try:
        profile = pipe.start(cfg)
    except RuntimeError as e:
        raise DPHMError(f"{path or 'RealSense'}: cannot start depth stream ({e})") from e
    device = profile.get_device()
    if path:
        device.as_playback().set_real_time(False)
    scale = device.first_depth_sensor().get_depth_scale()
    stream = profile.get_stream(rs.stream.depth).as_video_stream_profile()
    return pipe, scale, intrinsics_of(stream.get_intrinsics()), stream.fps()


class RealSense(DepthSource):
    """A RealSense camera (``path=None``) or a ``.bag`` recording, read in order."""

    def __init__(self, path=None, fps: int = 30):
        if path is not None and not Path(path).is_file():
            raise DPHMError(f"{path}: no such RealSense recording")
        self._pipe, self.depth_scale, intr, rate = open_pipeline(
            None if path is None else str(path), fps
        )
        super().__init__(
            str(path or "live:realsense"),
            intr,
            float(rate),
            {"camera": "Intel RealSense", "depth_scale": self.depth_scale},
        )
        self._live = path is None

    def __iter__(self):
        n = 0
        while True:
            ok, frames = self._pipe.try_wait_for_frames(5000)
            if not ok:
                if self._live:
                    warn(f"{self.path}: no frame for 5 s; stopping")
                break
            depth = frames.get_depth_frame()
            if depth:
                yield to_frame(depth, self.depth_scale, self.intrinsics, n, self.path)
                n += 1
        if n == 0:
            raise DPHMError(f"{self.path}: holds no depth frames")

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.stop()
            self._pipe = None
