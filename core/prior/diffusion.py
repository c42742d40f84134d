"""Gaussian diffusion over vectors: cosine schedule, v-prediction, DDPM and DDIM sampling.

With abar_t the cumulative product of (1 - beta_t),

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,     v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0

so x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v and eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v.
The denoiser ``net(x_t, t) -> v`` takes integer timesteps t in [0, T).
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


def cosine_alphas_cumprod(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """abar_t for t = 0..T-1 (Nichol & Dhariwal), betas clipped at 0.999; float64."""
    steps = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(0, 0.999)
    return torch.cumprod(1 - betas, 0)


def _at(buf, t):
    return buf[t].unsqueeze(-1)


class GaussianDiffusion(nn.Module):
    def __init__(self, timesteps: int = 1000):
        super().__init__()
        self.timesteps = timesteps
        ac = cosine_alphas_cumprod(timesteps)
        ac_prev = F.pad(ac[:-1], (1, 0), value=1.0)
        betas = 1 - ac / ac_prev
        var = betas * (1 - ac_prev) / (1 - ac)
        bufs = {
            "alphas_cumprod": ac,
            "sqrt_ac": ac.sqrt(),
            "sqrt_1m_ac": (1 - ac).sqrt(),
            "post_c0": betas * ac_prev.sqrt() / (1 - ac),  # posterior mean: c0 x_0 + ct x_t
            "post_ct": (1 - ac_prev) * (1 - betas).sqrt() / (1 - ac),
            "post_log_var": torch.log(var.clamp(min=1e-20)),
        }
        for k, v in bufs.items():
            self.register_buffer(k, v.float(), persistent=False)

    def q_sample(self, x0, t, noise):
        return _at(self.sqrt_ac, t) * x0 + _at(self.sqrt_1m_ac, t) * noise

    def v_target(self, x0, t, noise):
        return _at(self.sqrt_ac, t) * noise - _at(self.sqrt_1m_ac, t) * x0

    def x0_from_v(self, xt, t, v):
        return _at(self.sqrt_ac, t) * xt - _at(self.sqrt_1m_ac, t) * v

    def eps_from_v(self, xt, t, v):
        return _at(self.sqrt_1m_ac, t) * xt + _at(self.sqrt_ac, t) * v

    def loss(self, net, x0):
        """Mean squared v error at uniformly drawn timesteps (the training loss)."""
        t = torch.randint(0, self.timesteps, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        return F.mse_loss(net(self.q_sample(x0, t, noise), t), self.v_target(x0, t, noise))

    @torch.no_grad()
    def ddpm_sample(self, net, shape, generator=None):
        """Ancestral sampling through all T steps."""
        x = torch.randn(shape, generator=generator)
        for i in reversed(range(self.timesteps)):
            t = torch.full((shape[0],), i, dtype=torch.long)
            x0 = self.x0_from_v(x, t, net(x, t))
            x = _at(self.post_c0, t) * x0 + _at(self.post_ct, t) * x
            if i > 0:
                x = x + (0.5 * _at(self.post_log_var, t)).exp() * torch.randn(
                    shape, generator=generator
                )
        return x

    @torch.no_grad()
    def ddim_sample(self, net, shape, steps=50, eta=0.0, generator=None):
        """DDIM over ``steps`` evenly spaced timesteps; deterministic given the noise at eta 0."""
        times = torch.linspace(self.timesteps - 1, 0, steps).round().long().tolist()
        x = torch.randn(shape, generator=generator)
        for i, cur in enumerate(times):
            t = torch.full((shape[0],), cur, dtype=torch.long)
            v = net(x, t)
            x0, eps = self.x0_from_v(x, t, v), self.eps_from_v(x, t, v)
            if i == len(times) - 1:
                return x0
            ac, ac_next = self.alphas_cumprod[cur], self.alphas_cumprod[times[i + 1]]
            sigma = eta * ((1 - ac_next) / (1 - ac) * (1 - ac / ac_next)).sqrt()
            x = ac_next.sqrt() * x0 + (1 - ac_next - sigma**2).sqrt() * eps
            if eta > 0:
                x = x + sigma * torch.randn(shape, generator=generator)
        return x


class EMA:
    """Exponential moving average of a module's parameters, with a warm-up."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.step = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module):
        self.step += 1
        d = min(self.decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - d)
