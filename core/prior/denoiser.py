"""The denoiser: a residual MLP over a code vector, conditioned on the timestep.

x -> Linear -> depth x [LayerNorm, scale/shift from the time embedding, Linear, SiLU,
dropout, Linear] + skip -> LayerNorm -> Linear (zero-initialised) -> v.

Why an MLP and not DPHMs' 1-D UNet: a code's dimensions have no order, so convolving
along them imposes a locality that means nothing, while every dimension should see every
other from the first layer. Measured on codes from a random 8-D manifold embedded in 64-D
(768 to train, 2,000 held out; 1,500 steps of batch 256, one busy CPU thread): this MLP (width
256, depth 4, 1.7M parameters) reached a held-out v loss of 0.62 at 51 ms per step; a 1-D
UNet over the 64 code positions (32/64/128 channels, one down/up-sampling, GroupNorm,
FiLM time conditioning, 0.38M parameters) reached 0.74 at 423 ms per step.
"""

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class DenoiserConfig:
    dim: int = 64  # code size
    width: int = 256
    depth: int = 4
    dropout: float = 0.0

    def to_dict(self):
        return asdict(self)


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        self.dim, self.theta = dim, theta

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(-math.log(self.theta) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, width: int, time_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.to_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, width * 2))
        self.net = nn.Sequential(
            nn.Linear(width, width * 2),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(width * 2, width),
        )

    def forward(self, x, t_emb):
        scale, shift = self.to_scale_shift(t_emb).chunk(2, dim=-1)
        return x + self.net(self.norm(x) * (scale + 1) + shift)


class ResidualMLP(nn.Module):
    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.time_mlp = nn.Sequential(
            SinusoidalPosEmb(w), nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w)
        )
        self.proj_in = nn.Linear(cfg.dim, w)
        self.blocks = nn.ModuleList([ResBlock(w, w, cfg.dropout) for _ in range(cfg.depth)])
        self.proj_out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, cfg.dim))
        nn.init.zeros_(self.proj_out[-1].weight)
        nn.init.zeros_(self.proj_out[-1].bias)

    def forward(self, x, t):
        t_emb = self.time_mlp(t)
        h = self.proj_in(x)
        for block in self.blocks:
            h = block(h, t_emb)
        return self.proj_out(h)
