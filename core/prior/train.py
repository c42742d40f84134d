"""Training the identity and expression priors on a head model's codebooks (``dphm train prior``).

Each space gets its own denoiser (the preset's size, or its smaller identity size), trained
on the auto-decoded training codes (identity: one per training identity; expression: one
per training expression, neutral included) with AdamW, a cosine learning-rate decay and an
EMA of the weights, which is what is saved. Each space is seeded on its own. Under torchrun
every rank draws its own batches and DDP averages the gradients.
"""

import math
import os
import time
from dataclasses import asdict

import torch
from tqdm import tqdm

from ..model.head import load_head
from ..train import dist
from ..train.presets import PRIOR_PRESETS, PriorPreset
from .denoiser import DenoiserConfig
from .diffusion import EMA
from .latent import SPACES, LatentPrior, save_prior


def fit_prior(codes, preset: PriorPreset, steps: int, desc="prior", quiet=False, rank=0):
    """A LatentPrior (EMA weights, eval mode) trained on codes (N, D); returns (prior, loss)."""
    codes = torch.as_tensor(codes, dtype=torch.float32)
    cfg = DenoiserConfig(codes.shape[1], preset.width, preset.depth, preset.dropout)
    prior = LatentPrior.for_codes(codes, cfg)
    model = dist.wrap(prior)
    opt = torch.optim.AdamW(prior.net.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    ema = EMA(prior.net, preset.ema_decay)
    gen = torch.Generator().manual_seed(preset.seed * 1000 + rank)
    bar = tqdm(range(steps), desc=desc, disable=quiet or rank != 0)
    avg = None
    for step in bar:
        batch = codes[torch.randint(0, len(codes), (preset.batch,), generator=gen)]
        loss = model(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update(prior.net)
        avg = loss.item() if avg is None else 0.99 * avg + 0.01 * loss.item()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{avg:.4f}")
    prior.net = ema.model
    return prior.eval().requires_grad_(False), avg


def train_prior(preset_name: str, head_path, out, quiet=False) -> dict:
    """Train both priors on the head checkpoint's codebooks and save them to ``out``."""
    preset = PRIOR_PRESETS[preset_name]
    rank, world = dist.setup()
    if world > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    _, content = load_head(head_path)
    books = content["codebooks"]
    t0 = time.time()
    priors, losses = {}, {}
    for k, (space, steps) in enumerate(
        zip(SPACES, (preset.id_steps, preset.exp_steps), strict=True)
    ):
        # each space reproducible on its own; timesteps and noise differ per rank
        torch.manual_seed(preset.seed * 1000 + 100 * k + rank)
        priors[space], losses[space] = fit_prior(
            books[space], preset.for_space(space), steps, f"{space} prior", quiet, rank
        )
    seconds = time.time() - t0
    result = {}
    if rank == 0:
        training = {
            "preset": preset_name,
            "preset_values": asdict(preset),
            "seconds": seconds,
            "final_losses": losses,
            "processes": world,
            "codes": {s: len(books[s]) for s in SPACES},
            "head_path": str(head_path),
        }
        sha = save_prior(out, priors, content["sha256"], training)
        result = {"path": str(out), "sha256": sha, "seconds": seconds, "losses": losses}
    dist.teardown()
    return result
