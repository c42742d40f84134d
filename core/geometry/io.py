"""Mesh files: OBJ and binary PLY, written atomically (temporary file, then rename)."""

import os
from pathlib import Path

import numpy as np

from ..data import obj
from ..errors import DPHMError

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")  # as core/data/obj.py names it


def _triangles(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] not in (3, 4):
        raise DPHMError(f"faces must be (F, 3) or (F, 4), got {faces.shape}")
    return obj.triangulate(faces)


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write an OBJ atomically; faces are 0-based (F, 3) or (F, 4) with -1 padding."""
    path = Path(path)
    try:
        obj.write_obj(path, vertices, faces)
    except BaseException:
        _partial(path).unlink(missing_ok=True)
        raise


def write_ply(
    path: str | os.PathLike,
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray | None = None,
) -> None:
    """Write a binary little-endian PLY atomically: float32 x y z (and nx ny nz), triangles."""
    path = Path(path)
    vertices = np.asarray(vertices, dtype="<f4").reshape(-1, 3)
    tris = _triangles(faces)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    vert = np.empty(len(vertices), dtype=fields)
    vert["x"], vert["y"], vert["z"] = vertices.T
    if normals is not None:
        vert["nx"], vert["ny"], vert["nz"] = np.asarray(normals, dtype="<f4").reshape(-1, 3).T
    face = np.empty(len(tris), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"], face["v"] = 3, tris
    header = ["ply", "format binary_little_endian 1.0", "comment written by dphm"]
    header.append(f"element vertex {len(vert)}")
    header += [f"property float {name}" for name, _ in fields]
    header += [f"element face {len(face)}", "property list uchar int vertex_indices"]
    header.append("end_header\n")
    tmp = _partial(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write("\n".join(header).encode("ascii"))
            fh.write(vert.tobytes())
            fh.write(face.tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read a binary little-endian triangle PLY: vertices (V, 3), faces (F, 3), normals or None."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DPHMError(f"{path}: cannot read PLY ({e.strerror})") from e
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise DPHMError(f"{path}: not a PLY file")
    try:
        return _parse_ply(path, data, end)
    except (KeyError, IndexError, ValueError) as e:
        raise DPHMError(f"{path}: malformed or truncated PLY ({e})") from e


def _parse_ply(path: Path, data: bytes, end: int):
    elements: list[list] = []  # [name, count, fields or list spec]
    for line in data[:end].decode("ascii", "replace").splitlines()[1:]:
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "format" and tok[1] != "binary_little_endian":
            raise DPHMError(f"{path}: only binary little-endian PLY is supported")
        elif tok[0] == "element":
            elements.append([tok[1], int(tok[2]), []])
        elif tok[0] == "property" and tok[1] == "list":
            elements[-1][2] = (_PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]])
        elif tok[0] == "property":
            elements[-1][2].append((tok[2], "<" + _PLY_TYPES[tok[1]]))
    offset, vert, faces = end + len(b"end_header\n"), None, None
    for name, count, spec in elements:
        if isinstance(spec, tuple):  # a list property: triangles only
            dtype = np.dtype([("n", "<" + spec[0]), ("v", "<" + spec[1], (3,))])
            arr = np.frombuffer(data, dtype, count, offset)
            if (arr["n"] != 3).any():
                raise DPHMError(f"{path}: only triangle faces are supported")
        else:
            dtype = np.dtype(spec)
            arr = np.frombuffer(data, dtype, count, offset)
        offset += dtype.itemsize * count
        if name == "vertex":
            vert = arr
        elif name == "face":
            faces = arr["v"].astype(np.int64)
    if vert is None or faces is None:
        raise DPHMError(f"{path}: PLY has no vertex or face element")
    xyz = np.column_stack([vert["x"], vert["y"], vert["z"]])
    has_normals = {"nx", "ny", "nz"} <= set(vert.dtype.names)
    normals = np.column_stack([vert["nx"], vert["ny"], vert["nz"]]) if has_normals else None
    return xyz, faces, normals
