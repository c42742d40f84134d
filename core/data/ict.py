"""ICT-FaceKit loader: the packed ``.npz`` or an upstream ``FaceXModel/`` folder of OBJ files.

Coordinates are ICT's own (x to the head's left, y up, z out of the face), converted from
centimetres to metres on load. A head is neutral + identity_deltas^T w_id + expression_deltas^T
w_exp with identity weights ~ N(0, 1) and expression weights in [0, 1].
"""

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from ..paths import shared_data_dir
from .obj import read_obj, triangulate

CM = 0.01

# Vertex ranges of the upstream README (inclusive starts, exclusive ends).
FACE = (0, 9409)
NARROW_FACE = (0, 6706)
HEAD_NECK = (9409, 11248)
EYEBALLS = (21451, 24591)


@dataclass
class ICTFaceKit:
    neutral: np.ndarray  # (N, 3) float32, metres
    faces: np.ndarray  # (F, 4) int32, -1 padded
    identity_names: list[str]
    identity_deltas: np.ndarray  # (I, N, 3) float32, metres
    expression_names: list[str]
    expression_deltas: np.ndarray  # (E, N, 3) float32, metres
    vertex_indices: dict = field(default_factory=dict)
    source: str = ""

    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    def head(self, id_w=None, exp_w=None) -> np.ndarray:
        """Vertices (N, 3) float32 for identity weights (<= I,) and expression weights (E,)."""
        v = self.neutral.astype(np.float32).copy()
        if id_w is not None:
            w = np.asarray(id_w, np.float32)
            v += np.tensordot(w, self.identity_deltas[: len(w)], 1)
        if exp_w is not None:
            v += np.tensordot(np.asarray(exp_w, np.float32), self.expression_deltas, 1)
        return v

    @cached_property
    def triangles(self) -> np.ndarray:
        return triangulate(self.faces)

    @cached_property
    def skin_triangles(self) -> np.ndarray:
        """Triangles of the outer surface a depth camera sees: face, head and neck, eyeballs."""
        return self.triangles[self.skin_vertex_mask[self.triangles].all(1)]

    @cached_property
    def skin_vertex_mask(self) -> np.ndarray:
        m = np.zeros(self.n_vertices, bool)
        for a, b in (FACE, HEAD_NECK, EYEBALLS):
            m[a:b] = True
        return m

    @cached_property
    def face_vertex_mask(self) -> np.ndarray:
        """ICT's narrow face area: the region face metrics are reported on."""
        m = np.zeros(self.n_vertices, bool)
        m[NARROW_FACE[0] : NARROW_FACE[1]] = True
        return m


def default_path() -> Path | None:
    root = shared_data_dir()
    path = root / "ict_facekit_light" / "ict_facekit_light.npz" if root else None
    return path if path and path.is_file() else None


def load_ict(path: str | os.PathLike | None = None, require_complete: bool = False) -> ICTFaceKit:
    """Load ICT-FaceKit from a packed ``.npz`` or an upstream ``FaceXModel/`` folder.

    With no path, the shared data copy is used. ``require_complete`` (folders only) demands
    all 100 identities and every expression listed in ``vertex_indices.json``.
    """
    if path is None:
        path = default_path()
        if path is None:
            raise DPHMError(
                "ICT-FaceKit not found: expected ../shared/data/ict_facekit_light/"
                "ict_facekit_light.npz or $DPHM_SHARED_DATA; pass a path to a .npz or a "
                "FaceXModel folder"
            )
    path = Path(path)
    if path.is_dir():
        return _load_folder(path, require_complete)
    if not path.is_file():
        raise DPHMError(f"{path}: no such ICT-FaceKit file or folder")
    return _load_npz(path)


def _load_npz(path: Path) -> ICTFaceKit:
    keys = (
        "neutral_vertices",
        "faces",
        "identity_names",
        "identity_deltas",
        "expression_names",
        "expression_deltas",
    )
    try:
        d = np.load(path, allow_pickle=False)
        missing = [k for k in keys if k not in d.files]
        if missing:
            raise DPHMError(f"{path}: not an ICT-FaceKit pack, missing keys {', '.join(missing)}")
        arrays = {k: d[k] for k in keys}
        vij = json.loads(str(d["vertex_indices_json"])) if "vertex_indices_json" in d.files else {}
        units = str(d["units"]) if "units" in d.files else "centimeters"
    except DPHMError:
        raise
    except Exception as e:
        raise DPHMError(f"{path}: cannot read ICT-FaceKit pack ({e})") from e
    scale = CM if units.startswith("centi") else 1.0
    n = len(arrays["neutral_vertices"])
    bad = [k for k in ("identity_deltas", "expression_deltas") if arrays[k].shape[1:] != (n, 3)]
    if bad:
        raise DPHMError(f"{path}: {', '.join(bad)} do not match the {n}-vertex neutral mesh")
    return ICTFaceKit(
        neutral=arrays["neutral_vertices"].astype(np.float32) * scale,
        faces=arrays["faces"].astype(np.int32),
        identity_names=[str(s) for s in arrays["identity_names"]],
        identity_deltas=arrays["identity_deltas"].astype(np.float32) * scale,
        expression_names=[str(s) for s in arrays["expression_names"]],
        expression_deltas=arrays["expression_deltas"].astype(np.float32) * scale,
        vertex_indices=vij,
        source=str(path),
    )


def _load_folder(folder: Path, require_complete: bool) -> ICTFaceKit:
    neutral_path = folder / "generic_neutral_mesh.obj"
    vij_path = folder / "vertex_indices.json"
    problems = [f"{p.name} is missing" for p in (neutral_path, vij_path) if not p.is_file()]
    if problems:
        raise DPHMError(f"{folder}: not a FaceXModel folder: {'; '.join(problems)}")
    try:
        vij = json.loads(vij_path.read_text())
    except (OSError, ValueError) as e:
        raise DPHMError(f"{vij_path}: cannot parse ({e})") from e
    neutral, faces = read_obj(neutral_path)
    id_names = [f"identity{i:03d}" for i in range(100)]
    exp_names = list(vij.get("expressions", []))
    present_ids = [n for n in id_names if (folder / f"{n}.obj").is_file()]
    present_exps = [n for n in exp_names if (folder / f"{n}.obj").is_file()]
    if require_complete:
        absent = [f"{n}.obj" for n in id_names + exp_names if not (folder / f"{n}.obj").is_file()]
        if absent:
            raise DPHMError(
                f"{folder}: incomplete FaceXModel folder, {len(absent)} files missing: "
                + ", ".join(absent)
            )

    def deltas(names):
        out, bad = [], []
        for name in names:
            v, _ = read_obj(folder / f"{name}.obj")
            if v.shape != neutral.shape:
                bad.append(f"{name}.obj has {len(v)} vertices, expected {len(neutral)}")
                continue
            out.append(v - neutral)
        return out, bad

    id_d, bad_i = deltas(present_ids)
    exp_d, bad_e = deltas(present_exps)
    if bad_i or bad_e:
        raise DPHMError(f"{folder}: inconsistent files: " + "; ".join(bad_i + bad_e))
    empty = np.zeros((0, len(neutral), 3), np.float32)
    return ICTFaceKit(
        neutral=neutral * CM,
        faces=faces,
        identity_names=present_ids,
        identity_deltas=(np.stack(id_d) if id_d else empty) * CM,
        expression_names=present_exps,
        expression_deltas=(np.stack(exp_d) if exp_d else empty) * CM,
        vertex_indices=vij,
        source=str(folder),
    )
