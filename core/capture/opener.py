"""``open_source``: one entry point from a path or live spec to a ``DepthSource``."""

from pathlib import Path

from ..errors import DPHMError
from .frame import DepthSource


def open_source(spec, color: bool = False, calibration=None) -> DepthSource:
    """``.mkv`` (Azure Kinect), ``.bag`` (RealSense), ``.r3d`` (Record3D), a capture folder,
    ``live:k4a`` or ``live:realsense``. ``calibration`` stands in for a missing
    calibration.json attachment of an .mkv."""
    text = str(spec)
    if text == "live:k4a":
        from .live import KinectLive

        return KinectLive(color=color)
    if text == "live:realsense":
        from .realsense import RealSense

        return RealSense()
    path = Path(text)
    if path.is_dir():
        from .folder import CaptureFolder

        return CaptureFolder(path)
    if not path.exists():
        raise DPHMError(f"{path}: no such file or folder (nor live:k4a / live:realsense)")
    suffix = path.suffix.lower()
    if suffix == ".mkv":
        from .mkv import KinectRecording

        return KinectRecording(path, color=color, calibration=calibration)
    if suffix == ".bag":
        from .realsense import RealSense

        return RealSense(path)
    if suffix == ".r3d":
        from .record3d import Record3D

        return Record3D(path)
    raise DPHMError(f"{path}: unknown depth format (expected .mkv, .bag, .r3d or a capture folder)")
