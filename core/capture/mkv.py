"""Azure Kinect recordings (``.mkv``) read through PyAV, without the Azure Kinect SDK.

The DEPTH track is raw ``b16g`` video (16-bit big-endian millimetres, 0 = no reading), its
tags name the depth mode, and the ``calibration.json`` attachment holds the factory
calibration. Timestamps are the device's: packet time plus K4A_START_OFFSET_NS.
"""

from pathlib import Path

import av
import numpy as np

from ..errors import DPHMError
from . import k4a_calibration
from .frame import DepthFrame, DepthSource, check_units
from .warn import warn

MODE_BY_SIZE = {
    (640, 576): "NFOV_UNBINNED",
    (320, 288): "NFOV_2X2BINNED",
    (512, 512): "WFOV_2X2BINNED",
    (1024, 1024): "WFOV_UNBINNED",
}


class KinectRecording(DepthSource):
    """Depth frames of an Azure Kinect ``.mkv``; ``color=True`` adds the colour image.

    ``calibration`` (a calibration.json path) stands in for a missing attachment.
    """

    def __init__(self, path, color: bool = False, calibration=None):
        path = Path(path)
        if not path.is_file():
            raise DPHMError(f"{path}: no such recording")
        try:
            self._container = av.open(str(path))
        except av.error.EOFError as e:
            raise DPHMError(
                f"{path}: recording holds no depth frames (it ends before the first one)"
            ) from e
        except av.error.FFmpegError as e:
            raise DPHMError(f"{path}: not a readable Matroska/Azure Kinect file ({e})") from e
        c = self._container
        depth = [
            s
            for s in c.streams.video
            if s.metadata.get("title") == "DEPTH" or "K4A_DEPTH_TRACK" in s.metadata
        ]
        if not depth:
            self.close()
            raise DPHMError(f"{path}: no DEPTH track (not an Azure Kinect depth recording)")
        self._stream = s = depth[0]
        w, h = s.codec_context.width, s.codec_context.height
        mode = s.metadata.get("K4A_DEPTH_MODE") or MODE_BY_SIZE.get((w, h))
        if mode not in k4a_calibration.DEPTH_MODES:
            self.close()
            raise DPHMError(f"{path}: unknown depth mode {mode!r} for a {w}x{h} DEPTH track")
        if calibration is not None:
            calib = Path(calibration).read_text()
        else:
            calib = next(
                (
                    a.data
                    for a in c.streams.attachments
                    if a.name == "calibration.json" or "K4A_CALIBRATION_FILE" in a.metadata
                ),
                None,
            )
        if calib is None:
            self.close()
            raise DPHMError(
                f"{path}: no calibration.json attachment; pass the camera's "
                "calibration.json (--calibration)"
            )
        self.calibration_json = calib if isinstance(calib, str) else bytes(calib).decode()
        intr = k4a_calibration.depth_intrinsics(self.calibration_json, mode, str(path))
        if (intr.width, intr.height) != (w, h):
            self.close()
            raise DPHMError(
                f"{path}: DEPTH track is {w}x{h} but depth mode {mode} is "
                f"{intr.width}x{intr.height}"
            )
        fps = float(s.average_rate or s.guessed_rate or 30)
        meta = {k: v for k, v in c.metadata.items() if k.startswith("K4A_")}
        meta["depth_mode"] = mode
        super().__init__(str(path), intr, fps, meta)
        self._offset = int(c.metadata.get("K4A_START_OFFSET_NS", 0) or 0) * 1e-9
        self._color = None
        if color:
            cs = [x for x in c.streams.video if x.metadata.get("title") == "COLOR"]
            res = cs[0].metadata.get("K4A_COLOR_MODE", "").split("_")[-1] if cs else ""
            if res in k4a_calibration.COLOR_MODES:
                self._color = cs[0]
                self.color_intrinsics = k4a_calibration.color_intrinsics(
                    self.calibration_json, res, str(path)
                )
                self.depth_to_color = k4a_calibration.depth_to_color(self.calibration_json)
            else:
                warn(f"{path}: no decodable COLOR track; frames carry depth only")
        self._pts: list[int] | None = None
        _check_complete(path)

    @property
    def length(self) -> int:
        return len(self._index())

    def _index(self) -> list[int]:
        if self._pts is None:
            pts = []
            for packet in self._packets([self._stream]):
                if packet.stream is self._stream:
                    pts.append(packet.pts)
            self._pts = pts
        return self._pts

    def _packets(self, streams, seek_pts=None):
        """Demux ``streams`` from the start (or ``seek_pts``); stop with a warning at damage."""
        c = self._container
        try:
            c.seek(0 if seek_pts is None else seek_pts, stream=self._stream, backward=True)
        except av.error.FFmpegError:
            pass
        size = self.intrinsics.width * self.intrinsics.height * 2
        try:
            for packet in c.demux(streams):
                if packet.size == 0:
                    continue
                if packet.stream is self._stream and packet.size != size:
                    warn(
                        f"{self.path}: damaged depth frame at {packet.pts} us "
                        f"({packet.size} of {size} bytes); stopping there"
                    )
                    return
                yield packet
        except (av.error.FFmpegError, OSError) as e:
            warn(
                f"{self.path}: recording is damaged or truncated ({e}); "
                "stopping after the intact frames"
            )

    def _frame(self, packet, index: int, color_packet=None) -> DepthFrame:
        w, h = self.intrinsics.width, self.intrinsics.height
        mm = np.frombuffer(packet, ">u2").reshape(h, w)
        depth = mm.astype(np.float32) * np.float32(0.001)
        if index == 0:
            check_units(depth, self.path)
        frame = DepthFrame(
            depth, self.intrinsics, float(packet.pts * packet.time_base) + self._offset, index
        )
        if color_packet is not None:
            rgb = None
            try:
                images = self._color.codec_context.decode(color_packet)
                rgb = images[0].to_ndarray(format="rgb24") if images else None
            except av.error.FFmpegError:
                warn(f"{self.path}: undecodable colour image at frame {index}")
            self.with_color(frame, rgb)
        return frame

    def __iter__(self):
        streams = [self._stream] + ([self._color] if self._color else [])
        last_color, n = None, 0
        half = 0.5 / self.fps
        for packet in self._packets(streams):
            if packet.stream is not self._stream:
                last_color = packet
                continue
            match = (
                last_color is not None
                and abs(float((last_color.pts - packet.pts) * packet.time_base)) <= half
            )
            yield self._frame(packet, n, last_color if match else None)
            n += 1
        if n == 0:
            raise DPHMError(f"{self.path}: recording holds no depth frames")

    def __getitem__(self, i: int) -> DepthFrame:
        pts = self._index()
        if not -len(pts) <= i < len(pts):
            raise IndexError(f"{self.path}: frame {i} of {len(pts)}")
        i %= len(pts)
        for packet in self._packets([self._stream], pts[i]):
            if packet.pts == pts[i]:
                return self._frame(packet, i)
        raise DPHMError(f"{self.path}: cannot seek to frame {i}")

    def close(self) -> None:
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None


def _check_complete(path: Path) -> None:
    """Warn when the Matroska segment is cut short or was never closed (a crash mid-take)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    size = path.stat().st_size

    def vint(i):
        n = 1
        while n <= 8 and not head[i] & (0x80 >> (n - 1)):
            n += 1
        value = int.from_bytes(head[i : i + n], "big") & ((1 << (7 * n)) - 1)
        return value, i + n, value == (1 << (7 * n)) - 1

    try:
        header_size, start, _ = vint(4)  # after the 4-byte EBML header ID
        seg_size, data, unknown = vint(start + header_size + 4)  # after the Segment ID
    except IndexError:
        return
    if unknown:
        warn(f"{path}: recording was not closed (crash mid-take?); reading the intact frames")
    elif data + seg_size > size:
        warn(f"{path}: truncated ({size} of {data + seg_size} bytes); reading the intact frames")
