"""Write Azure Kinect recordings (``.mkv``) without the SDK, one cluster per frame.

The layout mirrors the SDK's recorder: Matroska with raw ``b16g`` video tracks DEPTH (and IR)
under the VFW codec ID (a BITMAPINFOHEADER as codec private data), optionally a COLOR track
of MJPEG images (``V_MJPEG``, as the SDK records ``MJPG`` colour), K4A_* tags, and the
calibration.json attachment. Every frame's cluster is flushed as it is written, so a crash
mid-take leaves a file whose intact frames read back; ``close`` adds the cue index, the seek
head, the duration and the segment size.
"""

import os
import struct
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from . import ebml as E
from .frame import Intrinsics

HEADER_RESERVE = 160  # bytes kept at the segment start for the seek head


def bitmapinfoheader(width: int, height: int) -> bytes:
    return struct.pack(
        "<IiiHH4sIiiII", 40, width, height, 1, 16, b"b16g", width * height * 2, 0, 0, 0, 0
    )


class KinectWriter:
    """``with KinectWriter(path, intrinsics_json, fps) as w: w.write(depth_mm, ir, t_us)``.

    ``depth_mm`` and ``ir`` are (H, W) uint16; ``ir`` is optional per recording (pass
    ``ir=True`` to add the IR track). ``color`` names a colour resolution ("720P") to add a
    COLOR track; ``write(..., jpeg=bytes)`` then gives each frame's image. Timestamps are
    microseconds from the first frame.
    """

    def __init__(
        self,
        path,
        calibration_json: str,
        intrinsics: Intrinsics,
        fps: float = 30,
        depth_mode: str = "NFOV_UNBINNED",
        ir: bool = True,
        serial: str = "simulated",
        seed: int = 0,
        color: str | None = None,
    ):
        self.path = Path(path)
        self.color = color
        self.size = (intrinsics.width, intrinsics.height)
        self.fps = fps
        self.ir = ir
        self._cues: list[tuple[int, int]] = []
        self._last_t = 0
        rng = np.random.default_rng(seed)
        uids = [int(x) for x in rng.integers(1, 2**62, 5)]
        self._fh = open(self.path, "wb")
        w, h = self.size
        header = E.master(
            E.EBML,
            E.uint(E.EBML_VERSION, 1),
            E.uint(E.EBML_READ_VERSION, 1),
            E.uint(E.EBML_MAX_ID, 4),
            E.uint(E.EBML_MAX_SIZE, 8),
            E.string(E.DOCTYPE, "matroska"),
            E.uint(E.DOCTYPE_VERSION, 4),
            E.uint(E.DOCTYPE_READ_VERSION, 2),
        )
        self._fh.write(header + E.element_id(E.SEGMENT) + E.UNKNOWN_SIZE)
        self._seg = self._fh.tell()
        self._fh.write(E.void(HEADER_RESERVE))
        info = E.master(
            E.INFO,
            E.uint(E.TIMESTAMP_SCALE, 1000),
            E.float64(E.DURATION, 0.0),
            E.string(E.TITLE, "Azure Kinect"),
            E.string(E.MUXING_APP, "dphm"),
            E.string(E.WRITING_APP, "dphm"),
        )

        def track(number, uid, name):
            return E.master(
                E.TRACK_ENTRY,
                E.uint(E.TRACK_NUMBER, number),
                E.uint(E.TRACK_UID, uid),
                E.uint(E.TRACK_TYPE, 1),
                E.uint(E.FLAG_LACING, 0),
                E.string(E.NAME, name),
                E.string(E.LANGUAGE, "eng"),
                E.string(E.CODEC_ID, "V_MS/VFW/FOURCC"),
                E.element(E.CODEC_PRIVATE, bitmapinfoheader(w, h)),
                E.uint(E.DEFAULT_DURATION, round(1e9 / fps)),
                E.master(E.VIDEO, E.uint(E.PIXEL_WIDTH, w), E.uint(E.PIXEL_HEIGHT, h)),
            )

        tracks = [track(1, uids[0], "DEPTH")] + ([track(2, uids[1], "IR")] if ir else [])
        if color:
            from .k4a_calibration import COLOR_MODES

            cw, ch = COLOR_MODES[color][2]
            tracks.append(E.master(
                E.TRACK_ENTRY, E.uint(E.TRACK_NUMBER, 3), E.uint(E.TRACK_UID, uids[4]),
                E.uint(E.TRACK_TYPE, 1), E.uint(E.FLAG_LACING, 0), E.string(E.NAME, "COLOR"),
                E.string(E.LANGUAGE, "eng"), E.string(E.CODEC_ID, "V_MJPEG"),
                E.uint(E.DEFAULT_DURATION, round(1e9 / fps)),
                E.master(E.VIDEO, E.uint(E.PIXEL_WIDTH, cw), E.uint(E.PIXEL_HEIGHT, ch)),
            ))  # fmt: skip
        attachment = E.master(
            E.ATTACHMENTS,
            E.master(
                E.ATTACHED_FILE,
                E.string(E.FILE_NAME, "calibration.json"),
                E.string(E.FILE_MIME, "application/octet-stream"),
                E.element(E.FILE_DATA, calibration_json.encode()),
                E.uint(E.FILE_UID, uids[2]),
            ),
        )

        def tags(target, pairs):
            return [
                E.master(
                    E.TAG,
                    E.master(E.TARGETS, *target),
                    E.master(E.SIMPLE_TAG, E.string(E.TAG_NAME, k), E.string(E.TAG_STRING, v)),
                )
                for k, v in pairs
            ]

        def on_track(uid):
            return [E.string(E.TARGET_TYPE, "TRACK"), E.uint(E.TAG_TRACK_UID, uid)]

        tag_list = tags(
            on_track(uids[0]), [("K4A_DEPTH_TRACK", str(uids[0])), ("K4A_DEPTH_MODE", depth_mode)]
        )
        if ir:
            tag_list += tags(
                on_track(uids[1]), [("K4A_IR_TRACK", str(uids[1])), ("K4A_IR_MODE", "ACTIVE")]
            )
        if color:
            tag_list += tags(
                on_track(uids[4]),
                [("K4A_COLOR_TRACK", str(uids[4])), ("K4A_COLOR_MODE", f"MJPG_{color}")],
            )
        tag_list += tags(
            [],
            [
                ("K4A_DEPTH_DELAY_NS", "0"),
                ("K4A_WIRED_SYNC_MODE", "STANDALONE"),
                ("K4A_DEVICE_SERIAL_NUMBER", serial),
            ],
        )
        tag_list += tags(
            [E.string(E.TARGET_TYPE, "ATTACHMENT"), E.uint(E.TAG_ATTACHMENT_UID, uids[2])],
            [("K4A_CALIBRATION_FILE", "calibration.json")],
        )
        tag_list += tags([], [("K4A_START_OFFSET_NS", "0")])
        self._offsets = {E.INFO: self._fh.tell() - self._seg}
        self._fh.write(info)
        self._offsets[E.TRACKS] = self._fh.tell() - self._seg
        self._fh.write(E.master(E.TRACKS, *tracks))
        self._offsets[E.ATTACHMENTS] = self._fh.tell() - self._seg
        self._fh.write(attachment)
        self._offsets[E.TAGS] = self._fh.tell() - self._seg
        self._fh.write(E.master(E.TAGS, *tag_list))
        self._fh.flush()
        self._duration_at = (
            self._seg + self._offsets[E.INFO] + info.index(E.element_id(E.DURATION) + E.vint(8)) + 3
        )

    def write(self, depth_mm: np.ndarray, ir: np.ndarray | None = None, t_us: int | None = None,
              jpeg: bytes | None = None):  # fmt: skip
        """Append one frame; ``t_us`` defaults to the frame index at ``fps``."""
        if self._fh is None:
            raise DPHMError(f"{self.path}: writer already closed")
        w, h = self.size
        if depth_mm.shape != (h, w) or (self.ir and (ir is None or ir.shape != (h, w))):
            raise DPHMError(
                f"{self.path}: frame must be {w}x{h} depth" + (" and IR" if self.ir else "")
            )
        if t_us is None:
            t_us = round(len(self._cues) * 1e6 / self.fps)
        blocks = [(1, depth_mm)] + ([(2, ir)] if self.ir else [])
        payload = [E.uint(E.CLUSTER_TIMESTAMP, t_us)]
        if self.color and jpeg is not None:  # first, as the SDK's recorder orders them
            payload.append(E.element(E.SIMPLE_BLOCK, E.vint(3) + b"\x00\x00\x80" + jpeg))
        for number, image in blocks:
            data = np.ascontiguousarray(image, ">u2").tobytes()
            payload.append(E.element(E.SIMPLE_BLOCK, E.vint(number) + b"\x00\x00\x80" + data))
        pos = self._fh.tell() - self._seg
        self._fh.write(E.master(E.CLUSTER, *payload))
        self._fh.flush()
        self._cues.append((t_us, pos))
        self._last_t = t_us

    def close(self) -> None:
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            if self._cues:
                self._offsets[E.CUES] = fh.tell() - self._seg
            points = [
                E.master(
                    E.CUE_POINT,
                    E.uint(E.CUE_TIME, t),
                    E.master(
                        E.CUE_TRACK_POSITIONS,
                        E.uint(E.CUE_TRACK, 1),
                        E.uint(E.CUE_CLUSTER_POSITION, p),
                    ),
                )
                for t, p in self._cues
            ]
            fh.write(E.master(E.CUES, *points) if points else b"")
            end = fh.tell()
            seeks = [
                E.master(E.SEEK, E.element(E.SEEK_ID, E.element_id(k)), E.uint(E.SEEK_POSITION, v))
                for k, v in self._offsets.items()
            ]
            duration = (self._last_t + round(1e6 / self.fps)) if self._cues else 0
            head = E.master(E.SEEKHEAD, *seeks)
            fh.seek(self._seg)
            fh.write(head + E.void(HEADER_RESERVE - len(head)))
            fh.seek(self._duration_at)
            fh.write(struct.pack(">d", float(duration)))
            fh.seek(self._seg - 8)
            fh.write(E.vint(end - self._seg, 8))
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
