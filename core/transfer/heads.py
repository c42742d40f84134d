"""Expression transfer between model heads: a take's expression codes on another identity.

The model shares expression codes across identities, so a transfer keeps the take's codes
(and pose) and swaps the identity code. The target identity comes from the diffusion
prior (a seed), the model's training codebook, another take, or a fit to a mesh
(``retarget.fit_character``). The result is a bake (``tracking.bake``) of the new head.
"""

import numpy as np

from ..errors import DPHMError


def prior_identity(content, seed: int, prior_path=None) -> np.ndarray:
    """(D,) identity code sampled from the identity diffusion prior with ``seed``."""
    from ..prior.latent import load_prior
    from ..prior.sample import sample_codes

    priors, _ = load_prior(prior_path, content["sha256"])
    return sample_codes(priors, 1, 0, seed)[0][0].cpu().numpy()


def codebook_identity(content, index: int) -> np.ndarray:
    """(D,) the code of the model's training identity ``index``."""
    book = content["codebooks"]["id"]
    if not 0 <= index < len(book):
        raise DPHMError(
            f"codebook identity {index}: the model has {len(book)} (0..{len(book) - 1})"
        )
    return book[index].numpy()


def take_identity(path, content):
    """(identity code (D,), its refinement or None) of an earlier take tracked with the
    same model."""
    from ..tracking.take import read_take, refinement

    take = read_take(path)
    if take["model_sha256"] != content["sha256"]:
        raise DPHMError(f"{path}: tracked with another head model ({take['model_sha256'][:12]})")
    return take["z_id"], refinement(take)


def transfer_take(
    model, content, take, z_id, resolution=128, arkit_shapes=True, progress=None, refinement=None
):
    """The bake of ``take`` worn by identity ``z_id`` (with that head's own ``refinement``,
    never the performer's): its surface meshed once, posed by the take's expression codes,
    with the take's pose, timing and ARKit weights."""
    from ..tracking.bake import bake_take

    z_id = np.asarray(z_id, np.float32).reshape(-1)
    if z_id.shape != np.shape(take["z_id"]):
        raise DPHMError(f"identity code of size {len(z_id)} for a take of {len(take['z_id'])}")
    worn = {k: v for k, v in take.items() if not k.startswith("refine_")}
    worn.update(z_id=z_id, **(refinement.arrays() if refinement is not None else {}))
    return bake_take(model, content, worn, resolution, arkit_shapes, progress)
