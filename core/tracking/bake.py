"""A take baked to geometry: the arrays the Blender writers and the exporters consume.

A bake (``.npz``, format ``dphm-bake/1``, written atomically) holds one head mesh of fixed
topology in the model's canonical units (metres = units x ``s``):

| key | shape | meaning |
|---|---|---|
| ``faces`` | (F, 3) int32 | triangles |
| ``rest`` | (V, 3) float32 | the identity's canonical (expression-free) surface |
| ``frames`` | (T, V, 3) float32 | per frame, ``rest`` posed by the frame's expression |
| ``residual_mm`` | (T,) float32 | largest inverse-deformation residual of the frame, mm |
| ``R``, ``t``, ``s`` | (T, 3, 3), (T, 3), (T,) | canonical -> camera, x_cam = s R x + t |
| ``timestamps``, ``fps`` | (T,), () | seconds; frames per second |
| ``arkit`` | (T, 52) | the take's ARKit weights |
| ``arkit_shapes`` | (52, V, 3) or (0, V, 3) | ``rest`` posed by each ARKit shape at weight 1 |
| ``intrinsics``, ``source`` | str | the capture's intrinsics (JSON); what was baked |

Frames pose the mesh by inverting the backward deformation (``geometry.inverse``), warm
started from the previous frame, so every frame keeps the rest mesh's vertex order.
"""

import json
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from ..npz import load_npz, save_npz

FORMAT = "dphm-bake/1"


def _pose(model, z_id, codes, rest, scale, progress=None):
    """(frames (T, V, 3), residual_mm (T,)) of ``rest`` posed by each expression code."""
    import torch

    from ..geometry.inverse import invert_deformation

    z_id = torch.as_tensor(np.asarray(z_id), dtype=torch.float32).view(1, -1)
    frames = np.empty((len(codes), len(rest), 3), np.float32)
    residual = np.empty(len(codes), np.float32)
    prev = None
    for i, z in enumerate(codes):
        with torch.no_grad():
            cond = model.condition(z_id, torch.as_tensor(z, dtype=torch.float32).view(1, -1))
        prev, r = invert_deformation(model, cond, rest, init=prev, strict=False)
        frames[i] = prev
        residual[i] = float(r.max()) * float(scale[i]) * 1000.0 if len(r) else 0.0
        if progress:
            progress(i + 1, len(codes))
    return frames, residual


def rest_mesh(model, z_id, resolution=128, refinement=None):
    """(vertices, faces) of an identity's canonical surface (with the take's ``refinement``
    of it, if any): its largest component."""
    from ..geometry.meshing import largest_component, mesh_sdf

    fn = model.sdf_fn(z_id, refinement=refinement)
    v, f = largest_component(*mesh_sdf(fn, resolution=resolution))
    if len(f) == 0:
        raise DPHMError("the identity code has no surface inside the model's bounds")
    return v.astype(np.float32), f.astype(np.int32)


def arkit_shape_codes(content) -> np.ndarray:
    """(52, D) expression codes of the 52 ARKit shapes at weight 1, from the codebook."""
    from .arkit_map import codebook_arkit, codes_for_arkit

    weights, codes = codebook_arkit(content)
    return np.concatenate([codes_for_arkit(e[None], weights, codes)[0] for e in np.eye(52)])


def bake_take(model, content, take, resolution=128, arkit_shapes=True, progress=None) -> dict:
    """The bake of a take (see the module table), of its refined identity where it has a
    refinement. ``progress(done, total)`` per posed frame."""
    from .take import refinement

    rest, faces = rest_mesh(model, take["z_id"], resolution, refinement(take))
    n = len(take["z_exp"])
    total = n + (52 if arkit_shapes else 0)

    def step(done, _):
        if progress:
            progress(done, total)

    frames, residual = _pose(model, take["z_id"], take["z_exp"], rest, take["s"], step)
    if arkit_shapes:
        scale = np.full(52, np.median(take["s"]))
        shapes, _ = _pose(
            model, take["z_id"], arkit_shape_codes(content), rest, scale,
            lambda d, _: step(n + d, None),
        )  # fmt: skip
    else:
        shapes = np.zeros((0, len(rest), 3), np.float32)
    return {
        "faces": faces,
        "rest": rest,
        "frames": frames,
        "residual_mm": residual,
        "R": np.asarray(take["R"], np.float32),
        "t": np.asarray(take["t"], np.float32),
        "s": np.asarray(take["s"], np.float32),
        "timestamps": np.asarray(take["timestamps"], np.float64),
        "fps": np.float64(_fps(take["timestamps"])),
        "arkit": np.asarray(take["arkit"], np.float32),
        "arkit_shapes": shapes,
        "intrinsics": json.dumps(take["intrinsics"]),
        "source": str(take.get("source", "")),
    }


def frame_meshes(model, take, resolution=96):
    """Per frame (vertices, faces) marching-cubes meshes of the posed surface (varying
    topology, canonical units): the largest component of the posed SDF's zero level. The
    take's fixed identity (refined where it is) is cached once (``model.sdf_cache``), so a
    frame costs the deformation network and lookups. The mesher starts at a quarter of the
    resolution (16 cells at least) instead of 32 cells: at 96, 63k queries a frame instead
    of 147k for the same surface."""
    from ..geometry.meshing import largest_component, mesh_sdf
    from ..model.sdf_cache import CachedSDF
    from .take import refinement

    cache = CachedSDF.build(model.sdf_fn(take["z_id"], refinement=refinement(take)))
    coarse = max(16, resolution // 4)
    for z in take["z_exp"]:
        fn = model.sdf_fn(take["z_id"], z, canonical=cache)
        yield largest_component(*mesh_sdf(fn, resolution=resolution, coarse=coarse))


def _fps(timestamps) -> float:
    dt = np.diff(np.asarray(timestamps, np.float64))
    dt = dt[dt > 0]
    return float(round(1.0 / np.median(dt), 3)) if len(dt) else 30.0


def to_camera(bake: dict, i: int) -> np.ndarray:
    """Frame ``i``'s vertices in camera space (metres)."""
    return bake["s"][i] * bake["frames"][i] @ bake["R"][i].T + bake["t"][i]


def write_bake(path, bake: dict) -> Path:
    arrays = {**bake, "format": np.array(FORMAT)}
    arrays["intrinsics"] = np.array(bake["intrinsics"] if isinstance(bake["intrinsics"], str)
                                    else json.dumps(bake["intrinsics"]))  # fmt: skip
    arrays["source"] = np.array(str(bake.get("source", "")))
    return save_npz(path, arrays)


def read_bake(path) -> dict:
    """A bake's arrays; ``intrinsics`` as a dict, strings as ``str``."""
    data = load_npz(path, "bake")
    if str(data.get("format", "")) != FORMAT:
        raise DPHMError(f"{path}: not a bake of format {FORMAT}")
    v, t = len(data["rest"]), len(data["frames"])
    if data["frames"].shape[1:] != (v, 3) or any(len(data[k]) != t for k in ("R", "t", "s")):
        raise DPHMError(f"{path}: bake arrays do not agree in frames or vertices")
    data["intrinsics"] = json.loads(str(data["intrinsics"]))
    data["source"], data["format"] = str(data["source"]), str(data["format"])
    data["fps"] = float(data["fps"])
    return data
