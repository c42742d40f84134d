"""New heads from the priors: seeded codes, and a grid of identities x expressions as meshes.

The expression prior is unconditional and the head model shares expression codes across
identities, so every sampled expression is decoded on every sampled identity. Meshes are
written in metres in ICT's frame (x to the head's left, y up, z out of the face).
"""

from pathlib import Path

import torch
from tqdm import tqdm

from ..data import corpus
from ..geometry.io import write_obj, write_ply
from ..geometry.meshing import mesh_sdf
from ..npz import save_npz


def sample_codes(priors, n_id: int, n_exp: int, seed: int, sampler="ddim", steps=50):
    """(z_id (n_id, D), z_exp (n_exp, D)); each space has its own seeded stream."""
    gens = [torch.Generator().manual_seed(2 * seed + k) for k in (0, 1)]
    return tuple(
        priors[s].sample(n, sampler, steps, g) if n else torch.zeros(0, priors[s].cfg.dim)
        for s, n, g in zip(("id", "exp"), (n_id, n_exp), gens, strict=True)
    )


def decode(model, z_id, z_exp=None, resolution=128):
    """A head mesh (vertices in metres, faces) for one identity and optional expression.

    Meshed coarse to fine from 16^3 with the band that is exact for a true distance: a
    head is one connected surface, which the mesher follows from any seed, so the wider
    default band (for SDFs far from a distance) only adds queries here.
    """
    v, f = mesh_sdf(model.sdf_fn(z_id, z_exp), resolution=resolution, coarse=16, band=0.5)
    return corpus.from_canonical(v), f


def write_mesh(path: Path, vertices, faces):
    if path.suffix == ".npz":
        save_npz(path, {"vertices": vertices, "faces": faces})
    elif path.suffix == ".ply":
        write_ply(path, vertices, faces)
    else:
        write_obj(path, vertices, faces)


def write_grid(model, z_id, z_exp, out, fmt="obj", resolution=128, quiet=False) -> list[Path]:
    """Every identity neutral and with every expression: ``id00_neutral.obj``,
    ``id00_exp00.obj``, ...; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wi, we = (max(2, len(str(len(z) - 1))) for z in (z_id, z_exp))
    jobs = []
    for i in range(len(z_id)):
        jobs.append((out / f"id{i:0{wi}d}_neutral.{fmt}", z_id[i], None))
        jobs += [
            (out / f"id{i:0{wi}d}_exp{j:0{we}d}.{fmt}", z_id[i], z_exp[j])
            for j in range(len(z_exp))
        ]
    for path, zi, ze in tqdm(jobs, desc="heads", unit="head", disable=quiet):
        write_mesh(path, *decode(model, zi, ze, resolution))
    return [p for p, _, _ in jobs]
