"""Orbbec depth cameras (Femto Bolt, Femto Mega, Gemini, Astra) through Orbbec SDK v2's
Python binding ``pyorbbecsdk`` (``pip install pyorbbecsdk2``): depth, and colour with the
SDK's calibration.

Only ``open_pipeline`` touches the device. The rest turns what the SDK hands over (frame
sets) into ``DepthFrame`` s: depth as uint16 in units of ``get_depth_scale()`` millimetres;
intrinsics and distortion from each stream's profile; the depth-to-colour extrinsic
(``get_extrinsic_to``) as a row-major rotation and a translation in millimetres.
"""

import time

import numpy as np

from ..errors import DPHMError
from .frame import DepthFrame, DepthSource, Intrinsics, check_units
from .sdk import load
from .warn import warn

HINT = "pip install pyorbbecsdk2 (Orbbec SDK v2; on Linux also Orbbec's udev rules)"
TIMEOUT_S = 5.0


def _ob():
    return load("pyorbbecsdk", "Orbbec camera support", HINT)


def intrinsics(intr, dist=None) -> Intrinsics:
    """Our Intrinsics from an ``OBCameraIntrinsic`` and optional ``OBCameraDistortion``
    (k1..k6, p1, p2: OpenCV's rational model, reordered to [k1, k2, p1, p2, k3, k4, k5, k6])."""
    coeffs = ()
    if dist is not None:
        coeffs = tuple(
            float(getattr(dist, k)) for k in ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")
        )
    return Intrinsics(
        float(intr.fx), float(intr.fy), float(intr.cx), float(intr.cy),
        int(intr.width), int(intr.height), coeffs if any(coeffs) else (),
    )  # fmt: skip


def extrinsic(ext) -> np.ndarray:
    """(4, 4) depth camera -> colour camera in metres from an ``OBExtrinsic``."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(ext.rot, np.float64).reshape(3, 3)
    m[:3, 3] = np.asarray(ext.transform, np.float64).reshape(3) * 1e-3
    return m


def depth_metres(frame) -> np.ndarray:
    """(H, W) float32 metres of a pyorbbecsdk depth frame (0 = no reading)."""
    h, w = frame.get_height(), frame.get_width()
    raw = np.frombuffer(frame.get_data(), np.uint16)
    if raw.size != h * w:
        raise DPHMError(f"live:orbbec: depth frame has {raw.size} values for {w}x{h}")
    return raw.reshape(h, w).astype(np.float32) * np.float32(frame.get_depth_scale() * 1e-3)


def color_rgb(frame, formats) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB of a colour frame in RGB, BGR or MJPG; None for other formats."""
    h, w = frame.get_height(), frame.get_width()
    data = np.frombuffer(frame.get_data(), np.uint8)
    fmt = frame.get_format()
    if fmt in (formats.RGB, formats.BGR) and data.size == h * w * 3:
        image = data.reshape(h, w, 3)
        return image.copy() if fmt == formats.RGB else image[..., ::-1].copy()
    if fmt == formats.MJPG:
        import io

        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data.tobytes())).convert("RGB"))
    return None


def open_pipeline(color: bool):
    """Start the first Orbbec camera's depth (and RGB colour) stream; the hardware boundary.
    Returns (pipeline, the SDK module)."""
    ob = _ob()
    if ob.Context().query_devices().get_count() == 0:
        raise DPHMError(f"no Orbbec camera connected (pyorbbecsdk sees none); {HINT}")
    pipeline, config = ob.Pipeline(), ob.Config()
    try:
        depth = pipeline.get_stream_profile_list(ob.OBSensorType.DEPTH_SENSOR)
        config.enable_stream(depth.get_default_video_stream_profile())
        if color:
            profiles = pipeline.get_stream_profile_list(ob.OBSensorType.COLOR_SENSOR)
            config.enable_stream(profiles.get_video_stream_profile(0, 0, ob.OBFormat.RGB, 0))
        pipeline.start(config)
    except Exception as e:  # the SDK raises OBError, a RuntimeError subclass, or its own
        raise DPHMError(f"cannot start the Orbbec camera ({e})") from e
    return pipeline, ob


class OrbbecLive(DepthSource):
    """A live Orbbec camera; ``pipeline`` and ``sdk`` stand in for the device in tests."""

    def __init__(self, color: bool = False, pipeline=None, sdk=None):
        if pipeline is None:
            pipeline, sdk = open_pipeline(color)
        self._pipe, self._sdk, self._color = pipeline, sdk, color
        first = self._next(want_color=color)
        if first is None:
            self.close()
            what = "depth and colour frames" if color else "depth frame"
            raise DPHMError(f"live:orbbec: no {what} in {TIMEOUT_S:.0f} s")
        depth = first.get_depth_frame().get_stream_profile().as_video_stream_profile()
        intr = intrinsics(depth.get_intrinsic(), depth.get_distortion())
        super().__init__("live:orbbec", intr, float(depth.get_fps() or 30), {"camera": "Orbbec"})
        if color:
            rgb = first.get_color_frame().get_stream_profile().as_video_stream_profile()
            self.color_intrinsics = intrinsics(rgb.get_intrinsic(), rgb.get_distortion())
            self.depth_to_color = extrinsic(depth.get_extrinsic_to(rgb))
        self._pending = first

    def _next(self, want_color: bool = False):
        """The next frame set holding depth (and colour when asked), or None after
        TIMEOUT_S without one."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < TIMEOUT_S:
            frames = self._pipe.wait_for_frames(1000)
            if frames is None or frames.get_depth_frame() is None:
                continue
            if not want_color or frames.get_color_frame() is not None:
                return frames
        return None

    def __iter__(self):
        n = 0
        while self._pipe is not None:
            frames = self._pending if self._pending is not None else self._next()
            self._pending = None
            if frames is None:
                warn(f"live:orbbec: no frame for {TIMEOUT_S:.0f} s; stopping")
                break
            d = frames.get_depth_frame()
            depth = depth_metres(d)
            if n == 0:
                check_units(depth, "live:orbbec")
            frame = DepthFrame(depth, self.intrinsics, d.get_timestamp_us() * 1e-6, n)
            c = frames.get_color_frame() if self._color else None
            if c is not None and (rgb := color_rgb(c, self._sdk.OBFormat)) is not None:
                self.with_color(frame, rgb)
            yield frame
            n += 1

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.stop()
            self._pipe = None


def device_names() -> list[str]:
    """Connected Orbbec cameras by name; empty without pyorbbecsdk or a camera."""
    try:
        import pyorbbecsdk as ob

        devices = ob.Context().query_devices()
        return [f"Orbbec {devices.get_device_name_by_index(i)}" for i in range(devices.get_count())]
    except Exception:
        return []
