"""Per-frame shape keys: one key per frame, each at full weight only on its own frame."""

import numpy as np

from .animation import channelbag, keyframes


def frame_shape_keys(obj, frames_vertices: np.ndarray, first_frame: int = 0, prefix: str = "frame"):
    """Add a key per frame (T, N, 3) to mesh object ``obj`` (its mesh is the basis) and key
    each one's value 0 -> 1 -> 0 around frame ``first_frame + i``, linearly in between.
    ``frames_vertices`` may be any iterable of (N, 3) arrays (e.g. a generator)."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    names = []
    for i, v in enumerate(frames_vertices):
        key = obj.shape_key_add(name=f"{prefix}{first_frame + i:06d}", from_mix=False)
        key.data.foreach_set("co", np.asarray(v, np.float32).ravel())
        names.append(key.name)
    shape_keys = obj.data.shape_keys
    bag = channelbag(shape_keys, f"{obj.name}_frames")
    for i, name in enumerate(names):
        f = first_frame + i
        keyframes(bag, f'key_blocks["{name}"].value', 0, (f - 1, f, f + 1), (0.0, 1.0, 0.0))
    return names
