"""Record3D (iPhone/iPad TrueDepth or LiDAR): ``.r3d`` files and the app's USB stream.

An ``.r3d`` is a zip of ``metadata`` (JSON) and ``rgbd/N.depth`` frames, each
LZFSE-compressed float32 metres (``pip install lzfse``). ``metadata["K"]`` is the colour
camera matrix, column-major, for the ``w`` x ``h`` colour image; the depth image
(``dw`` x ``dh``) is the same view scaled down.

``live:record3d`` reads the app's USB stream through the ``record3d`` package: per frame a
float32 depth image in metres, the RGB image and the RGB camera's intrinsics (fx, fy, tx,
ty). Depth is the colour view at a lower resolution, so the depth-to-colour transform is
the identity.
"""

import json
import re
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from .frame import DepthFrame, DepthSource, Intrinsics, check_units
from .sdk import load
from .warn import warn

FRAME = re.compile(r"^rgbd/(\d+)\.depth$")


def _lzfse():
    try:
        import lzfse
    except ImportError as e:
        raise DPHMError("reading .r3d needs the lzfse package: pip install lzfse") from e
    return lzfse


def depth_intrinsics(meta: dict, where: str) -> Intrinsics:
    try:
        K = np.asarray(meta["K"], float).reshape(3, 3).T
        w, h = int(meta["w"]), int(meta["h"])
        dw, dh = int(meta.get("dw", w)), int(meta.get("dh", h))
    except (KeyError, ValueError, TypeError) as e:
        raise DPHMError(f"{where}: metadata lacks intrinsics K and sizes w, h ({e})") from e
    sx, sy = dw / w, dh / h
    # scale pixel-centre coordinates: (c + 0.5) * s - 0.5
    return Intrinsics(
        K[0, 0] * sx, K[1, 1] * sy, (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5, dw, dh
    )


class Record3D(DepthSource):
    def __init__(self, path):
        path = Path(path)
        try:
            self._zip = zipfile.ZipFile(path)
            meta = json.loads(self._zip.read("metadata"))
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as e:
            raise DPHMError(f"{path}: not a Record3D .r3d file ({e})") from e
        intr = depth_intrinsics(meta, str(path))
        names = sorted((int(m.group(1)), n) for n in self._zip.namelist() if (m := FRAME.match(n)))
        if not names:
            raise DPHMError(f"{path}: .r3d holds no rgbd/N.depth frames")
        self._names = [n for _, n in names]
        self._numbers = [k for k, _ in names]
        super().__init__(
            str(path),
            intr,
            float(meta.get("fps", 30)),
            {"camera": "Record3D", "cameraType": meta.get("cameraType")},
        )

    @property
    def length(self) -> int:
        return len(self._names)

    def __getitem__(self, i: int) -> DepthFrame:
        name = self._names[i]
        i %= len(self._names)
        w, h = self.intrinsics.width, self.intrinsics.height
        try:
            raw = _lzfse().decompress(self._zip.read(name))
        except Exception as e:
            raise DPHMError(f"{self.path}: {name} is damaged ({e})") from e
        if len(raw) != w * h * 4:
            raise DPHMError(f"{self.path}: {name} has {len(raw)} bytes, expected {w}x{h} float32")
        depth = np.frombuffer(raw, np.float32).reshape(h, w).copy()
        depth[~np.isfinite(depth) | (depth < 0)] = 0
        if i == 0:
            check_units(depth, f"{self.path}: {name}")
        return DepthFrame(depth, self.intrinsics, self._numbers[i] / self.fps, i)

    def __iter__(self):
        for i in range(len(self._names)):
            yield self[i]

    def close(self) -> None:
        self._zip.close()


STREAM_HINT = (
    "pip install record3d, and in the Record3D app on the iPhone/iPad choose USB streaming "
    "and press the record button"
)
TIMEOUT_S = 5.0


def _record3d():
    return load("record3d", "iPhone/iPad streaming", STREAM_HINT)


def open_stream():
    """Connect to the first device streaming over USB; the hardware boundary."""
    r3d = _record3d()
    devices = r3d.Record3DStream.get_connected_devices()
    if not devices:
        raise DPHMError(f"no iPhone/iPad is streaming over USB; {STREAM_HINT}")
    stream = r3d.Record3DStream()
    if not stream.connect(devices[0]):
        raise DPHMError(f"cannot connect to the Record3D stream; {STREAM_HINT}")
    return stream


def stream_frame(depth, rgb, coeffs, index: int, timestamp: float) -> DepthFrame:
    """One frame of the stream: depth (H, W) metres, rgb (Hc, Wc, 3), the RGB intrinsics."""
    depth = np.array(depth, np.float32, copy=True)
    depth[~np.isfinite(depth) | (depth < 0)] = 0
    h, w = depth.shape
    rgb = np.ascontiguousarray(rgb, np.uint8)
    ch, cw = rgb.shape[:2]
    K = [[coeffs.fx, 0, coeffs.tx], [0, coeffs.fy, coeffs.ty], [0, 0, 1]]
    meta = {"K": np.asarray(K).T.ravel().tolist(), "w": cw, "h": ch, "dw": w, "dh": h}
    intr = depth_intrinsics(meta, "live:record3d")
    color_intr = depth_intrinsics({**meta, "dw": cw, "dh": ch}, "live:record3d")
    if index == 0:
        check_units(depth, "live:record3d")
    return DepthFrame(depth, intr, timestamp, index, rgb, color_intr, np.eye(4))


class Record3DLive(DepthSource):
    """The Record3D app's USB stream; ``stream`` stands in for the device in tests."""

    def __init__(self, stream=None):
        self._stream = stream or open_stream()
        self._arrived = threading.Event()
        self._stopped = False
        self._stream.on_new_frame = self._arrived.set
        self._stream.on_stream_stopped = self._on_stopped
        self._t0 = time.monotonic()
        first = self._grab(0)
        if first is None:
            self.close()
            raise DPHMError(f"live:record3d: no frame in {TIMEOUT_S:.0f} s; {STREAM_HINT}")
        self._first = first
        camera = {0: "TrueDepth", 1: "LiDAR"}.get(self._stream.get_device_type(), "unknown")
        super().__init__("live:record3d", first.intrinsics, 30.0, {"camera": f"Record3D {camera}"})
        self.color_intrinsics, self.depth_to_color = first.color_intrinsics, np.eye(4)

    def _on_stopped(self) -> None:
        self._stopped = True
        self._arrived.set()

    def _grab(self, index: int) -> DepthFrame | None:
        if not self._arrived.wait(TIMEOUT_S) or self._stopped:
            return None
        self._arrived.clear()
        s = self._stream
        t = time.monotonic() - self._t0
        return stream_frame(s.get_depth_frame(), s.get_rgb_frame(), s.get_intrinsic_mat(), index, t)

    def __iter__(self):
        n, frame = 0, self._first
        while self._stream is not None:
            if frame is None:
                warn("live:record3d: the stream stopped or sent nothing for 5 s; stopping")
                break
            yield frame
            n += 1
            frame = self._grab(n)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.disconnect()
            self._stream = None
