"""Training the amortised encoder on simulated captures (``dphm train encoder``).

Each sample is one simulated Azure Kinect frame (``capture.simulate.HeadSimulator``) of a
training identity (``corpus`` train split, the head model's 192) wearing a training-style
expression (train seed stream, as ARKit weights), at a random head pose 0.5 to 0.8 m away,
with Kinect noise scaled x0.5 to x4. The segmented head points are canonicalised by
``guesses`` pose guesses per frame: the true pose perturbed by a random rotation (3 or 10
degrees rms per axis) and shift (5 or 15 mm rms per axis), as the rigid search or a fast
head leave it. Targets: the 57 ICT weights rendered, the perturbation and where the head
model's anchor vertices are in the guessed frame. Training draws a quarter to all of a
sample's points (sparse clouds too). Samples are cached under ``weights/training/``.
Loss: weights MSE + standardised code MSE (through the fixed code map) + rotation and
shift errors + the landmarks' Laplace negative log-likelihood (distance / spread + log
spread, so the spread learns each landmark's expected error).
"""

import hashlib
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from ..capture.simulate import ICT_TO_CAMERA, HeadSimulator
from ..data import corpus
from ..data.arkit import arkit_to_ict_matrix, ict_to_arkit_matrix
from ..data.ict import load_ict
from ..model.head import load_head
from ..paths import WEIGHTS_DIR
from ..tracking.encoder import PointEncoder, canonical_input, code_map, save_encoder
from ..tracking.preprocess import segment_head
from ..tracking.rigid import SCALE
from . import dist
from .presets import ENCODER_PRESETS, EncoderPreset

N_TRAIN_IDENTITIES = 192  # the head model's training identities
LOSS = {"weights": 10.0, "code": 1.0, "rot": 10.0, "trans": 100.0, "landmarks": 0.1}
FIELDS = ("x", "weights", "A", "b", "landmarks")


def random_pose(rng, pivot):
    """(R, t) ICT -> camera: the face centre ``pivot`` 0.5 to 0.8 m away, turned up to 35
    degrees (yaw), 20 (pitch) and 10 (roll)."""
    ypr = np.deg2rad(rng.uniform(-1, 1, 3) * [35, 20, 10])
    R = Rotation.from_euler("YXZ", ypr).as_matrix() @ ICT_TO_CAMERA
    t = np.array([*rng.uniform(-0.06, 0.06, 2), rng.uniform(0.5, 0.8)]) - R @ pivot
    return R, t


def make_samples(sim, ids, arkit, rng, index, preset, anchor_vertices):
    """[(inputs (n_points, 6), ICT weights, A (3, 3), b (3,), landmarks (L, 3))] for
    ``preset.guesses`` pose guesses of one rendered frame, or [] when the segmentation finds
    no head."""
    sim.identity = ids[rng.integers(len(ids))]
    sim.base = sim.ict.head(sim.identity)
    sim.noise_scale = rng.uniform(0.5, 4.0)
    R, t = random_pose(rng, sim.pivot)
    f = sim.frame(index, arkit, R, t)
    obs = segment_head(f.frame, max_points=2 * preset.n_points, seed=index)
    if not obs.found:
        return []
    Rc, tc = R, t + R @ corpus.CANONICAL_CENTER  # canonical -> camera, scale SCALE
    out = []
    for g in range(preset.guesses):
        big = rng.random() < 0.3
        A = Rotation.from_rotvec(rng.normal(0, np.deg2rad(10 if big else 3), 3)).as_matrix()
        b = rng.normal(0, (0.015 if big else 0.005) / SCALE, 3)
        R0 = Rc @ A.T
        t0 = tc - SCALE * R0 @ b
        x = canonical_input(obs.points, obs.normals, R0, t0, preset.n_points, seed=index + g)
        lm = (f.vertices[anchor_vertices] - t0) @ R0 / SCALE
        out.append((x, sim.arkit_to_ict @ arkit, A, b, lm))
    return out


def build_samples(
    preset: EncoderPreset, ict, anchor_vertices, cache: Path | None = None, quiet=False
) -> dict:
    """All samples of a preset (``n_frames`` x ``guesses``) as numpy arrays (cached as .npz
    when ``cache`` is given); landmarks at the ICT vertices ``anchor_vertices``."""
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    ids = corpus.identity_weights("train", N_TRAIN_IDENTITIES, len(ict.identity_names))
    exps = corpus.expression_weights("train", ict.expression_names, preset.n_frames)
    arkit = np.clip(exps @ ict_to_arkit_matrix(ict.expression_names).T, 0, 1)
    sim = HeadSimulator(ict, seed=preset.seed)
    sim.arkit_to_ict = arkit_to_ict_matrix(ict.expression_names)
    rows = []
    for i in tqdm(range(preset.n_frames), desc="simulating frames", disable=quiet):
        rng = np.random.default_rng([preset.seed, i])
        s = []
        while not s:
            s = make_samples(sim, ids, arkit[i], rng, i, preset, anchor_vertices)
        rows += s
    data = {k: np.stack([r[j] for r in rows]).astype(np.float32) for j, k in enumerate(FIELDS)}
    data["x"] = data["x"].astype(np.float16)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".partial")
        with open(tmp, "wb") as fh:
            np.savez(fh, **data)
        os.replace(tmp, cache)
    return data


class Loss:
    """The encoder loss for a batch, and its parts."""

    def __init__(self, content):
        cmap = torch.from_numpy(code_map(content))
        self.cmap_w, self.cmap_1 = cmap[:-1], cmap[-1]
        self.code_std = content["codebooks"]["exp"].std(0) + 1e-6

    def __call__(self, net, x, weights, A, b, lm):
        w, A_hat, b_hat, lm_hat, log_spread = net(x)
        dz = (w - weights) @ self.cmap_w / self.code_std
        parts = {
            "weights": ((w - weights) ** 2).mean(),
            "code": (dz**2).mean(),
            "rot": ((A_hat - A) ** 2).sum((1, 2)).mean(),
            "trans": ((b_hat - b) ** 2).sum(1).mean(),
            "landmarks": ((lm_hat - lm).norm(dim=2) / log_spread.exp() + log_spread).mean(),
        }
        return sum(LOSS[k] * v for k, v in parts.items()), parts


def _tensors(data, sel):
    return [torch.from_numpy(data[k][sel]).float() for k in FIELDS]


def fit_encoder(data, content, anchors, preset: EncoderPreset, quiet=False, rank=0):
    """A PointEncoder trained on ``data``; returns (net, history): the loss on (up to 256)
    training samples and on the validation samples (the last ``val`` share) at the start
    and the end, and its parts at the end."""
    n = len(data["x"])
    n_val = preset.guesses * max(1, int(round(preset.val * n / preset.guesses)))  # whole frames
    train, val = np.arange(n - n_val), np.arange(n - n_val, n)
    net = PointEncoder(width=preset.width, anchors=anchors)
    model = dist.wrap(net)
    loss_fn = Loss(content)
    opt = torch.optim.Adam(net.parameters(), lr=preset.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * s / preset.steps))
    )
    gen = torch.Generator().manual_seed(preset.seed * 1000 + rank)
    fixed = {"train": _tensors(data, train[:256]), "val": _tensors(data, val)}

    def evaluate(split):
        net.eval()
        with torch.no_grad():
            total, parts = loss_fn(net, *fixed[split])
        net.train()
        return float(total), {k: float(v) for k, v in parts.items()}

    history = {f"{k}_start": evaluate(k)[0] for k in fixed}
    bar = tqdm(range(preset.steps), desc="encoder", disable=quiet or rank != 0)
    avg = None
    for step in bar:
        sel = train[torch.randint(0, len(train), (preset.batch,), generator=gen).numpy()]
        x, *targets = _tensors(data, sel)
        k = int(torch.randint(preset.n_points // 4, preset.n_points + 1, (1,), generator=gen))
        x = x[:, torch.randperm(x.shape[1], generator=gen)[:k]]  # sparser clouds too
        loss, _ = loss_fn(model, x, *targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if step % 25 == 0:
            bar.set_postfix(loss=f"{avg:.4f}")
    for k in fixed:
        history[f"{k}_end"], history[f"{k}_parts"] = evaluate(k)
    return net.eval(), history


def train_encoder(preset_name: str, head_path, out, quiet=False, cache_dir=None) -> dict:
    """Simulate (or load the cached) samples, train, save the encoder to ``out``."""
    preset = ENCODER_PRESETS[preset_name]
    rank, world = dist.setup()
    if world > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(preset.seed * 1000 + rank)
    model, content = load_head(head_path)
    anchor_vertices = np.asarray(model.cfg.anchor_vertices)
    ict = load_ict()
    data_fields = (
        preset.n_frames,
        preset.n_points,
        preset.guesses,
        preset.seed,
        anchor_vertices.tolist(),
    )
    key = hashlib.sha256(repr(data_fields).encode()).hexdigest()[:10]
    cache = Path(cache_dir or WEIGHTS_DIR / "training") / f"encoder_data_{preset_name}_{key}.npz"
    t0 = time.time()
    if rank == 0:
        data = build_samples(preset, ict, anchor_vertices, cache, quiet)
    dist.barrier()
    if rank != 0:
        data = build_samples(preset, ict, anchor_vertices, cache, quiet=True)
    t1 = time.time()
    net, history = fit_encoder(data, content, model.cfg.mean_anchors, preset, quiet, rank)
    seconds = time.time() - t0
    result = {}
    if rank == 0:
        notes = {
            "preset": preset_name,
            "preset_values": asdict(preset),
            "simulate_seconds": t1 - t0,
            "seconds": seconds,
            "history": history,
            "processes": world,
            "head_path": str(head_path or "default"),
        }
        sha = save_encoder(out, net, content, notes)
        result = {"path": str(out), "sha256": sha, "seconds": seconds, "history": history}
    dist.teardown()
    return result
