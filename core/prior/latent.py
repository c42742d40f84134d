"""One diffusion prior per latent space, and the prior checkpoint that holds both.

A ``LatentPrior`` works on codes as the head model uses them; inside, codes are
standardised per dimension with the training codebook's mean and standard deviation
(stored in the checkpoint) and the diffusion runs on the standardised vectors.

The checkpoint (kind "prior", default ``weights/prior.pt``) holds both spaces:
``config`` {space: DenoiserConfig}, ``state_dict`` (EMA weights, keys "id.*" and "exp.*"),
``normalisation`` {space: {"mean", "std"}}, ``timesteps``, and ``head_sha256``: the head
checkpoint whose codebooks it was trained on; loading against another head fails.
"""

from contextlib import contextmanager

import torch
from torch import nn

from ..errors import DPHMError
from ..model import checkpoint
from .denoiser import DenoiserConfig, ResidualMLP
from .diffusion import GaussianDiffusion

SPACES = ("id", "exp")
DEFAULT_NAME = "prior.pt"


@contextmanager
def _one_thread():
    """Run small tensor work on one thread: a 64-d denoiser step is far too small to
    split, and on a busy machine every extra thread only adds waiting at each step."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class LatentPrior(nn.Module):
    def __init__(self, cfg: DenoiserConfig, mean, std, timesteps: int = 1000):
        super().__init__()
        self.cfg = cfg
        self.net = ResidualMLP(cfg)
        self.diffusion = GaussianDiffusion(timesteps)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32), persistent=False)

    @classmethod
    def for_codes(cls, codes, cfg: DenoiserConfig, timesteps: int = 1000):
        codes = torch.as_tensor(codes, dtype=torch.float32)
        return cls(cfg, codes.mean(0), codes.std(0).clamp(min=1e-6), timesteps)

    def normalise(self, codes):
        return (codes - self.mean) / self.std

    def denormalise(self, x):
        return x * self.std + self.mean

    def forward(self, codes):
        """The training loss on a batch of codes."""
        return self.diffusion.loss(self.net, self.normalise(codes))

    @torch.no_grad()
    def sample(self, n: int, sampler="ddim", steps=50, generator=None):
        """(n, D) codes; ``generator`` (a seeded torch.Generator) makes them reproducible."""
        shape = (n, self.cfg.dim)
        if sampler not in ("ddim", "ddpm"):
            raise DPHMError(f"unknown sampler {sampler!r} (ddim or ddpm)")
        with _one_thread():
            if sampler == "ddim":
                x = self.diffusion.ddim_sample(self.net, shape, steps, generator=generator)
            else:
                x = self.diffusion.ddpm_sample(self.net, shape, generator=generator)
        return self.denormalise(x)


def save_prior(path, priors: dict, head_sha256: str, training: dict) -> str:
    content = {
        "config": {s: priors[s].cfg.to_dict() for s in SPACES},
        "state_dict": {
            f"{s}.{k}": v for s in SPACES for k, v in priors[s].net.state_dict().items()
        },
        "normalisation": {s: {"mean": priors[s].mean, "std": priors[s].std} for s in SPACES},
        "timesteps": priors["id"].diffusion.timesteps,
        "head_sha256": head_sha256,
        "training": training,
    }
    return checkpoint.save(path, "prior", content)


def load_prior(path=None, head_sha256: str | None = None) -> tuple[dict, dict]:
    """({"id": LatentPrior, "exp": LatentPrior} in eval mode, content) from ``path`` or the
    shipped default; with ``head_sha256``, fails unless the prior was trained on that head."""
    from ..paths import checkpoint_dir

    path = path or checkpoint_dir() / DEFAULT_NAME
    content = checkpoint.load(path, kind="prior")
    if head_sha256 is not None and content.get("head_sha256") != head_sha256:
        raise DPHMError(
            f"{path}: trained on head model {str(content.get('head_sha256'))[:12]}, not on "
            f"{head_sha256[:12]}; retrain it with `dphm train prior --head HEAD`"
        )
    priors = {}
    try:
        for s in SPACES:
            norm = content["normalisation"][s]
            prior = LatentPrior(
                DenoiserConfig(**content["config"][s]),
                norm["mean"],
                norm["std"],
                content["timesteps"],
            )
            prefix = f"{s}."
            prior.net.load_state_dict(
                {
                    k[len(prefix) :]: v
                    for k, v in content["state_dict"].items()
                    if k.startswith(prefix)
                }
            )
            priors[s] = prior.eval().requires_grad_(False)
    except (TypeError, KeyError, RuntimeError) as e:
        raise DPHMError(f"{path}: checkpoint does not match this version's prior ({e})") from e
    return priors, content
