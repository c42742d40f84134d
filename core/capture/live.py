"""Live cameras: Azure Kinect (and Orbbec Femto through Orbbec's K4A wrapper) via pyk4a
here; Orbbec SDK v2 cameras (``orbbec``), Intel RealSense (``realsense``) and iPhones
through Record3D (``record3d``) in their own modules. ``record`` writes a standard Azure
Kinect .mkv through the SDK's own recorder, flushed as it goes so that a crash keeps the
frames taken so far; the other cameras record to a capture folder.
"""

import time
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from . import k4a_calibration
from .frame import DepthFrame, DepthSource, check_units
from .sdk import load

K4A_HINT = (
    "pip install pyk4a-bundle (ships the Azure Kinect SDK libraries; for Orbbec Femto "
    "install Orbbec's K4A wrapper and plain pyk4a)"
)


def _pyk4a():
    return load("pyk4a", "Azure Kinect support", K4A_HINT)


def list_devices() -> list[str]:
    """Names of connected depth cameras; empty when no driver or device answers."""
    names = []
    try:
        import pyk4a

        for i in range(pyk4a.connected_device_count()):
            names.append(f"Azure Kinect / K4A device #{i}")
    except Exception:
        pass
    try:
        import pyrealsense2 as rs

        for dev in rs.context().query_devices():
            names.append(f"Intel RealSense {dev.get_info(rs.camera_info.name)}")
    except Exception:
        pass
    from .orbbec import device_names

    names += device_names()
    try:
        import record3d

        for dev in record3d.Record3DStream.get_connected_devices():
            names.append(f"Record3D device {dev.udid}")
    except Exception:
        pass
    return names


def k4a_config(color: bool = False, fps: int = 30, mjpeg: bool = False):
    """NFOV unbinned depth at ``fps``; colour 720p when asked (BGRA, or MJPEG to record)."""
    pyk4a = _pyk4a()
    rates = {5: pyk4a.FPS.FPS_5, 15: pyk4a.FPS.FPS_15, 30: pyk4a.FPS.FPS_30}
    if fps not in rates:
        raise DPHMError(f"Azure Kinect runs at 5, 15 or 30 fps, not {fps}")
    return pyk4a.Config(
        depth_mode=pyk4a.DepthMode.NFOV_UNBINNED,
        camera_fps=rates[fps],
        color_resolution=pyk4a.ColorResolution.RES_720P if color else pyk4a.ColorResolution.OFF,
        color_format=pyk4a.ImageFormat.COLOR_MJPG if mjpeg else pyk4a.ImageFormat.COLOR_BGRA32,
        synchronized_images_only=color,
    )


def open_k4a(color: bool = False, fps: int = 30, mjpeg: bool = False):
    """Start the first Azure Kinect / K4A device; the only place that touches hardware."""
    pyk4a = _pyk4a()
    if pyk4a.connected_device_count() == 0:
        raise DPHMError("no Azure Kinect / Orbbec K4A device connected (check USB 3 and power)")
    device = pyk4a.PyK4A(k4a_config(color, fps, mjpeg))
    try:
        device.start()
    except Exception as e:
        raise DPHMError(f"cannot start the Azure Kinect ({e})") from e
    return device


def k4a_frame(depth_mm: np.ndarray, t_usec: int, intr, index: int) -> DepthFrame:
    """A DepthFrame from one K4A depth image (uint16 millimetres) and its device time."""
    depth = depth_mm.astype(np.float32) * np.float32(0.001)
    if index == 0:
        check_units(depth, "live:k4a")
    return DepthFrame(depth, intr, t_usec * 1e-6, index)


class KinectLive(DepthSource):
    def __init__(self, color: bool = False, fps: int = 30, device=None):
        self.device = device or open_k4a(color, fps)
        calib = self.device.calibration_raw
        intr = k4a_calibration.depth_intrinsics(calib, "NFOV_UNBINNED", "live:k4a")
        super().__init__("live:k4a", intr, float(fps), {"camera": "Azure Kinect"})
        self._color = color
        if color:
            self.color_intrinsics = k4a_calibration.color_intrinsics(calib, "720P", "live:k4a")
            self.depth_to_color = k4a_calibration.depth_to_color(calib)

    def __iter__(self):
        n = 0
        while self.device is not None:
            cap = self.device.get_capture()
            if cap.depth is None:
                continue
            frame = k4a_frame(cap.depth, cap.depth_timestamp_usec, self.intrinsics, n)
            if self._color and cap.color is not None:
                self.with_color(frame, cap.color[..., 2::-1].copy())
            yield frame
            n += 1

    def close(self) -> None:
        if self.device is not None:
            self.device.stop()
            self.device = None


def record(out, seconds: float, camera: str = "k4a", color: bool = False, progress=None) -> int:
    """Record ``seconds`` of live capture to ``out``; returns the number of frames.

    Azure Kinect: a standard .mkv through the SDK recorder (opens in Microsoft's tools);
    Orbbec, RealSense, Record3D: a capture folder (colour too with ``color``). ``progress``
    is called with each frame count.
    """
    out = Path(out)
    if camera in ("orbbec", "realsense", "record3d"):
        from .folder import FolderWriter
        from .opener import open_source

        n, t0 = 0, time.monotonic()
        with open_source(f"live:{camera}", color=color) as src:
            with FolderWriter(out, src.intrinsics, src.fps) as w:
                for frame in src:
                    w.write(frame)
                    n += 1
                    if progress:
                        progress(n)
                    if time.monotonic() - t0 >= seconds:
                        break
        return n
    if camera != "k4a":
        raise DPHMError(f"unknown camera {camera!r} (k4a, orbbec, realsense or record3d)")
    if out.suffix.lower() != ".mkv":
        raise DPHMError(f"{out}: Azure Kinect recordings are written as .mkv")
    pyk4a = _pyk4a()
    device = open_k4a(color, mjpeg=True)
    rec = pyk4a.PyK4ARecord(out, k4a_config(color, mjpeg=True), device)
    n, t0 = 0, time.monotonic()
    try:
        rec.create()
        rec.write_header()
        while time.monotonic() - t0 < seconds:
            rec.write_capture(device.get_capture())
            n += 1
            if n % 15 == 0:
                rec.flush()
            if progress:
                progress(n)
    finally:
        rec.flush()
        rec.close()
        device.stop()
    return n
