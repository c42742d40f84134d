"""Training the head model as an auto-decoder (``dphm train model``).

Phase 1 fits the identity SDF and one code per training identity on neutral heads; phase 2
freezes them and fits the backward deformation and one code per expression (shared by
every identity that wears it) on posed heads. Both phases run under torchrun: each rank
draws its own shapes and points, DDP averages the gradients.
"""

import hashlib
import math
import os
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import corpus
from ..data.ict import load_ict
from ..data.samples import expression_samples, identity_samples
from ..data.surface import topology
from ..model import checkpoint
from ..model.anchors import symmetric_anchors
from ..model.head import HeadModel, ModelConfig
from . import dist
from .presets import EXP_LOSS, HEAD_PRESETS, ID_LOSS, N_ANCHOR_HALF, SDF_CLAMP, HeadPreset

_ICT = None


def _ict(path):
    global _ICT
    if _ICT is None:
        _ICT = load_ict(path)
    return _ICT


def _id_job(args):
    path, i, id_w, anchor_vertices = args
    ict = _ict(path)
    return identity_samples(
        ict, topology(ict), id_w, anchor_vertices, np.random.default_rng(10_000 + i)
    )


def _exp_job(args):
    path, j, id_w, exp_w = args
    ict = _ict(path)
    return expression_samples(ict, topology(ict), id_w, exp_w, np.random.default_rng(50_000 + j))


def _stack(dicts):
    return {k: torch.from_numpy(np.stack([d[k] for d in dicts])) for k in dicts[0]}


def build_dataset(preset: HeadPreset, ict_path=None, cache: Path | None = None) -> dict:
    """All training samples of a preset (cached as .pt when ``cache`` is given)."""
    if cache is not None and cache.is_file():
        return torch.load(cache, weights_only=False)
    ict = load_ict(ict_path)
    src = ict.source
    mean = ict.head()
    anchor_vertices, mirror = symmetric_anchors(mean, np.arange(11248), N_ANCHOR_HALF)
    id_w = corpus.identity_weights("train", preset.n_identities, len(ict.identity_deltas))
    exp_w = corpus.expression_weights("train", ict.expression_names, preset.n_expressions)
    pairs = [
        (i, (i * preset.exps_per_identity + r) % preset.n_expressions)
        for i in range(preset.n_identities)
        for r in range(preset.exps_per_identity)
    ]
    id_jobs = [(src, i, id_w[i], anchor_vertices) for i in range(preset.n_identities)]
    exp_jobs = [(src, j, id_w[i], exp_w[e]) for j, (i, e) in enumerate(pairs)]
    with get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        ids = list(tqdm(pool.imap(_id_job, id_jobs), total=len(id_jobs), desc="identity samples"))
        exps = list(
            tqdm(
                pool.imap(_exp_job, exp_jobs, chunksize=4),
                total=len(exp_jobs),
                desc="expression samples",
            )
        )
    data = {
        "identity": _stack(ids),
        "expression": _stack(exps),
        "pairs": torch.tensor(pairs),
        "id_weights": torch.from_numpy(id_w),
        "exp_weights": torch.from_numpy(exp_w),
        "anchor_vertices": torch.from_numpy(anchor_vertices),
        "mirror": torch.from_numpy(mirror),
        "mean_anchors": torch.from_numpy(corpus.to_canonical(mean[anchor_vertices])),
    }
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, cache.with_suffix(".partial"))
        os.replace(cache.with_suffix(".partial"), cache)
    return data


class IdentityStage(nn.Module):
    """Identity SDF + identity codebook: the phase-1 loss for a batch of identities."""

    def __init__(self, model: HeadModel, n_codes: int):
        super().__init__()
        self.model = model
        self.codes = nn.Embedding(n_codes, model.cfg.d_id)
        nn.init.normal_(self.codes.weight, 0.0, 0.01)

    def forward(self, ids, batch):
        z = self.codes(ids)
        cond = {"id": self.model.identity.condition(z)}
        b = len(ids)
        surf, nrm, sdf_pts, sdf = (
            batch["surf_pts"],
            batch["surf_nrm"],
            batch["sdf_pts"],
            batch["sdf"],
        )
        g_surf = surf[:, : batch["n_grad"]].reshape(-1, 3).requires_grad_(True)
        g_sdf = sdf_pts[:, : batch["n_grad"]].reshape(-1, 3).requires_grad_(True)
        rest_surf = surf[:, batch["n_grad"] :].reshape(-1, 3)
        rest_sdf = sdf_pts[:, batch["n_grad"] :].reshape(-1, 3)
        x = torch.cat([g_surf, g_sdf, rest_surf, rest_sdf])
        shape = [
            torch.arange(b).repeat_interleave(t.shape[1])
            for t in (
                surf[:, : batch["n_grad"]],
                sdf_pts[:, : batch["n_grad"]],
                surf[:, batch["n_grad"] :],
                sdf_pts[:, batch["n_grad"] :],
            )
        ]
        f = self.model.sdf(x, cond, torch.cat(shape))
        n1, n2, n3 = (
            len(g_surf),
            len(g_surf) + len(g_sdf),
            len(g_surf) + len(g_sdf) + len(rest_surf),
        )
        grad = torch.autograd.grad(f[:n2].sum(), [g_surf, g_sdf], create_graph=True)
        on = torch.cat([f[:n1], f[n2:n3]])
        target = sdf.clamp(-SDF_CLAMP, SDF_CLAMP)
        t_grad, t_rest = (
            target[:, : batch["n_grad"]].reshape(-1),
            target[:, batch["n_grad"] :].reshape(-1),
        )
        off = torch.cat([f[n1:n2] - t_grad, f[n3:] - t_rest])
        losses = {
            "surf": on.abs().mean(),
            "sdf": off.abs().mean(),
            "normal": (
                1 - F.cosine_similarity(grad[0], nrm[:, : batch["n_grad"]].reshape(-1, 3))
            ).mean(),
            "eikonal": ((grad[1].norm(dim=1) - 1) ** 2).mean(),
            "anchor": ((cond["id"]["anchors"] - batch["anchors"]) ** 2).sum(-1).mean(),
            "reg": (z**2).sum(1).mean(),
        }
        return sum(ID_LOSS[k] * v for k, v in losses.items()), losses


class ExpressionStage(nn.Module):
    """Deformation + expression codebook, identity frozen: the phase-2 loss."""

    def __init__(self, model: HeadModel, id_codes: torch.Tensor, n_codes: int):
        super().__init__()
        self.model = model
        self.register_buffer("id_codes", id_codes)
        self.codes = nn.Embedding(n_codes, model.cfg.d_exp)
        nn.init.normal_(self.codes.weight, 0.0, 0.01)

    def forward(self, id_idx, exp_idx, batch):
        z_exp = self.codes(exp_idx)
        z_id = self.id_codes[id_idx]
        with torch.no_grad():
            id_cond = self.model.identity.condition(z_id)
        c_exp = self.model.expression.condition(z_exp, z_id, id_cond["anchors"])
        b, n = batch["posed_pts"].shape[:2]
        shape = torch.arange(b).repeat_interleave(n)
        x = batch["posed_pts"].reshape(-1, 3)
        canon = x + self.model.expression(x, c_exp, shape)
        on = batch["on_surface"].reshape(-1)
        f = self.model.identity(canon[on], id_cond, shape[on])
        losses = {
            "corr": (canon - batch["canon_pts"].reshape(-1, 3)).abs().sum(1).mean(),
            "surf": f.abs().mean(),
            "reg": (z_exp**2).sum(1).mean(),
        }
        return sum(EXP_LOSS[k] * v for k, v in losses.items()), losses


def _lr_factor(step, total):
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


def train_head(
    preset_name: str,
    out: Path,
    ict_path=None,
    cache_dir: Path | None = None,
    resume: bool = True,
    quiet: bool = False,
) -> dict:
    preset = HEAD_PRESETS[preset_name]
    rank, world = dist.setup()
    threads = os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(int(threads))
    torch.manual_seed(preset.seed)
    data_fields = (preset.n_identities, preset.exps_per_identity, preset.n_expressions)
    key = hashlib.sha256(repr(data_fields).encode()).hexdigest()[:10]
    cache = (cache_dir or out.parent / "training") / f"head_data_{preset_name}_{key}.pt"
    if rank == 0:
        build_dataset(preset, ict_path, cache)
    dist.barrier()
    data = build_dataset(preset, ict_path, cache)
    cfg = ModelConfig(
        anchor_vertices=data["anchor_vertices"].tolist(),
        mirror=data["mirror"].tolist(),
        mean_anchors=data["mean_anchors"].tolist(),
    )
    model = HeadModel(cfg)
    id_stage = IdentityStage(model, preset.n_identities)
    exp_stage = ExpressionStage(model, id_stage.codes.weight.detach(), preset.n_expressions)
    state_path = out.with_name(out.name + ".train")
    start = {"phase": 0, "step": 0}
    st = torch.load(state_path, weights_only=False) if resume and state_path.is_file() else {}
    if st:
        id_stage.load_state_dict(st["id_stage"])
        exp_stage.load_state_dict(st["exp_stage"], strict=False)
        start = {"phase": st["phase"], "step": st["step"]}
    gen = torch.Generator().manual_seed(preset.seed * 1000 + rank)
    t0 = time.time()
    log = {}
    for phase, stage, steps in ((0, id_stage, preset.id_steps), (1, exp_stage, preset.exp_steps)):
        if phase < start["phase"]:
            continue
        if phase == 1:
            exp_stage.id_codes.copy_(id_stage.codes.weight.detach())
        params = (
            list(model.identity.parameters()) if phase == 0 else list(model.expression.parameters())
        )
        opt = torch.optim.Adam(
            [
                {"params": params, "lr": preset.lr},
                {"params": stage.codes.parameters(), "lr": preset.lr_codes},
            ]
        )
        base = [g["lr"] for g in opt.param_groups]
        if st.get("phase") == phase and "opt" in st:  # the optimizer saved mid-phase
            opt.load_state_dict(st["opt"])
        model.identity.requires_grad_(phase == 0)  # DDP syncs only what this phase trains
        model.expression.requires_grad_(phase == 1)
        ddp = dist.wrap(stage)
        first = start["step"] if phase == start["phase"] else 0
        bar = tqdm(
            range(first, steps),
            desc=["identity", "expression"][phase],
            disable=quiet or rank != 0,
            initial=first,
            total=steps,
        )
        parts = {}
        for step in bar:
            for g, lr in zip(opt.param_groups, base, strict=True):
                g["lr"] = lr * _lr_factor(step, steps)
            loss, parts = _step(ddp, phase, data, preset, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if rank == 0 and step % 20 == 0:
                bar.set_postfix({k: f"{v.item():.2e}" for k, v in parts.items()})
            if rank == 0 and (step + 1) % 250 == 0:
                _save_state(state_path, id_stage, exp_stage, opt, phase, step + 1)
        if parts:  # empty when resuming at the very end of a phase
            log[["identity", "expression"][phase]] = {k: v.item() for k, v in parts.items()}
        start = {"phase": phase + 1, "step": 0}
        if rank == 0:
            _save_state(state_path, id_stage, exp_stage, None, phase + 1, 0)
    result = {}
    if rank == 0:
        result = save_head(
            out, model, id_stage, exp_stage, data, preset_name, time.time() - t0, log, world
        )
        state_path.unlink(missing_ok=True)
    dist.teardown()
    return result


def _save_state(path, id_stage, exp_stage, opt, phase, step):
    st = {
        "id_stage": id_stage.state_dict(),
        "exp_stage": exp_stage.state_dict(),
        "phase": phase,
        "step": step,
    }
    if opt is not None:
        st["opt"] = opt.state_dict()
    torch.save(st, path.with_name(path.name + ".partial"))
    os.replace(path.with_name(path.name + ".partial"), path)


def _step(ddp, phase, data, preset, gen):
    b = preset.shapes_per_step
    if phase == 0:
        ids = torch.randint(0, preset.n_identities, (b,), generator=gen)
        d = data["identity"]
        idx = torch.randint(0, d["surf_pts"].shape[1], (b, preset.n_surf), generator=gen)
        batch = {
            "surf_pts": d["surf_pts"][ids[:, None], idx],
            "surf_nrm": d["surf_nrm"][ids[:, None], idx],
        }
        idx = torch.randint(0, d["sdf_pts"].shape[1], (b, preset.n_sdf), generator=gen)
        batch.update(
            sdf_pts=d["sdf_pts"][ids[:, None], idx],
            sdf=d["sdf"][ids[:, None], idx],
            anchors=d["anchors"][ids],
            n_grad=preset.n_grad,
        )
        return ddp(ids, batch)
    j = torch.randint(0, len(data["pairs"]), (b,), generator=gen)
    d = data["expression"]
    idx = torch.randint(0, d["posed_pts"].shape[1], (b, preset.n_corr), generator=gen)
    batch = {k: d[k][j[:, None], idx] for k in ("posed_pts", "canon_pts", "on_surface")}
    return ddp(data["pairs"][j, 0], data["pairs"][j, 1], batch)


def save_head(out, model, id_stage, exp_stage, data, preset_name, seconds, log, world) -> dict:
    content = {
        "config": model.cfg.to_dict(),
        "state_dict": model.state_dict(),
        "codebooks": {
            "id": id_stage.codes.weight.detach().clone(),
            "exp": exp_stage.codes.weight.detach().clone(),
            "id_weights": data["id_weights"],
            "exp_weights": data["exp_weights"],
            "pairs": data["pairs"],
        },
        "normalisation": {
            "center": corpus.CANONICAL_CENTER.tolist(),
            "scale": corpus.CANONICAL_SCALE,
        },
        "training": {
            "preset": preset_name,
            "seconds": seconds,
            "final_losses": log,
            "processes": world,
            "loss_weights": {"identity": ID_LOSS, "expression": EXP_LOSS},
        },
    }
    sha = checkpoint.save(out, "head_model", content)
    return {"path": str(out), "sha256": sha, "seconds": seconds, "losses": log}
