"""``open_source``: one entry point from a path or live spec to a ``DepthSource``."""

from pathlib import Path

from ..errors import DPHMError
from .frame import DepthSource

CAMERAS = ("k4a", "orbbec", "realsense", "record3d")


def open_source(spec, color: bool = False, calibration=None) -> DepthSource:
    """``.mkv`` (Azure Kinect), ``.bag`` / ``.db3`` (RealSense), ``.r3d`` (Record3D), a capture
    folder, or a camera: ``live:k4a``, ``live:orbbec``, ``live:realsense``, ``live:record3d``.
    ``calibration`` stands in for a missing calibration.json attachment of an .mkv."""
    text = str(spec)
    if text == "live:k4a":
        from .live import KinectLive

        return KinectLive(color=color)
    if text == "live:orbbec":
        from .orbbec import OrbbecLive

        return OrbbecLive(color=color)
    if text == "live:realsense":
        from .realsense import RealSense

        return RealSense()
    if text == "live:record3d":
        from .record3d import Record3DLive

        return Record3DLive()
    if text.startswith("live:"):
        raise DPHMError(f"{text}: unknown camera (live:{', live:'.join(CAMERAS)})")
    path = Path(text)
    if path.is_dir():
        from .folder import CaptureFolder

        return CaptureFolder(path)
    if not path.exists():
        cameras = ", live:".join(CAMERAS)
        raise DPHMError(f"{path}: no such file or folder (nor a camera: live:{cameras})")
    suffix = path.suffix.lower()
    if suffix == ".mkv":
        from .mkv import KinectRecording

        return KinectRecording(path, color=color, calibration=calibration)
    if suffix in (".bag", ".db3"):  # librealsense 2.57+ records ROS 2 .db3 bags
        from .realsense import RealSense

        return RealSense(path)
    if suffix == ".r3d":
        from .record3d import Record3D

        return Record3D(path)
    raise DPHMError(
        f"{path}: unknown depth format (expected .mkv, .bag, .db3, .r3d or a capture folder)"
    )
