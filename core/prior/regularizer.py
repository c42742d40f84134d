"""The diffusion priors as fitting regularisers (what the tracker adds to its loss).

For codes z, standardised to x_0, noise eps and t drawn uniformly from
[t_lo T, t_hi T] (DPHMs: [0.4 T, 0.6 T]), x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps:

- "dphm": the denoising loss mean |eps_hat(x_t, t) - eps|^2, backpropagated into z through
  the frozen denoiser (DPHMs' regulariser).
- "sds": score distillation: the gradient (eps_hat - eps) is applied to x_0 directly,
  skipping the denoiser's Jacobian (cheaper, noisier); the loss value is 1/2 of its
  mean square.

Both pull z toward higher prior density: for data N(0, I) the ideal eps_hat is
sqrt(1 - abar_t) x_t, and either gradient is then proportional to x_0 in expectation.
"""

import torch

from .latent import load_prior

MODES = ("dphm", "sds")


def prior_loss(prior, codes, mode="dphm", t_range=(0.4, 0.6), samples=1, generator=None):
    """Mean prior loss over a batch of codes (B, D) of one latent space."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    diff = prior.diffusion
    x0 = prior.normalise(codes).repeat(samples, 1)
    lo, hi = (round(f * diff.timesteps) for f in t_range)
    t = torch.randint(lo, hi, (len(x0),), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = diff.q_sample(x0, t, eps)
    if mode == "dphm":
        eps_hat = diff.eps_from_v(xt, t, prior.net(xt, t))
        return ((eps_hat - eps) ** 2).mean()
    with torch.no_grad():
        grad = diff.eps_from_v(xt, t, prior.net(xt, t)) - eps
    return 0.5 * ((x0 - (x0 - grad).detach()) ** 2).mean()


class PriorRegularizer:
    """Weighted prior losses on identity and expression codes.

    ``loss(z_id=..., z_exp=...)`` takes codes (D,) or (B, D) and returns (total, parts);
    a missing code or a zero weight skips that space. The denoisers stay frozen; gradients
    reach only the codes.
    """

    def __init__(
        self, priors: dict, w_id=1.0, w_exp=1.0, mode="dphm", t_range=(0.4, 0.6), samples=4
    ):
        self.priors = priors
        self.weights = {"id": w_id, "exp": w_exp}
        self.mode, self.t_range, self.samples = mode, t_range, samples

    @classmethod
    def load(cls, path=None, head_sha256=None, **kwargs):
        return cls(load_prior(path, head_sha256)[0], **kwargs)

    def loss(self, z_id=None, z_exp=None, generator=None):
        parts = {}
        for space, z in (("id", z_id), ("exp", z_exp)):
            if z is None or not self.weights[space]:
                continue
            parts[space] = prior_loss(
                self.priors[space],
                z.reshape(-1, z.shape[-1]),
                self.mode,
                self.t_range,
                self.samples,
                generator,
            )
        total = sum(self.weights[s] * v for s, v in parts.items())
        return total, parts
