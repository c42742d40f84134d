"""Record3D ``.r3d`` files (iPhone TrueDepth / LiDAR): a zip of ``metadata`` (JSON) and
``rgbd/N.depth`` frames, each LZFSE-compressed float32 metres (``pip install lzfse``).

``metadata["K"]`` is the colour camera matrix, column-major, for the ``w`` x ``h`` colour
image; the depth image (``dw`` x ``dh``) is the same view scaled down.
"""

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from .frame import DepthFrame, DepthSource, Intrinsics, check_units

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
