"""Training the head model as an auto-decoder (``dphm train model``).

Phase 1 fits the identity SDF and one code per training identity on neutral heads; phase 2
freezes them and fits the backward deformation and one code per expression (shared by
every identity that wears it) on posed heads. Both phases run under torchrun: each rank
draws its own shapes and points, DDP averages the gradients. The ``triplane`` family adds
the 2D adversarial objective on normal maps to phase 1 (``adversarial.py``); ``losses``
picks a loss set of the thesis' ablation (``presets.LOSS_SETS``).
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
from ..model.bench import ground_truth_mesh
from ..model.head import HeadModel, ModelConfig
from . import dist
from .adversarial import (
    Discriminator,
    discriminator_loss,
    generator_loss,
    mesh_normal_maps,
    random_views,
    render_normals,
)
from .presets import (
    ADV_LOSS,
    EXP_LOSS,
    HEAD_PRESETS,
    ID_LOSS,
    LOSS_SETS,
    N_ANCHOR_HALF,
    SDF_CLAMP,
    HeadPreset,
)

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


def _maps_job(args):
    path, i, id_w, views, res = args
    ict = _ict(path)
    v, t = ground_truth_mesh(topology(ict), ict.head(id_w))
    return mesh_normal_maps(corpus.to_canonical(v), t, views, res).astype(np.float16)


def build_normal_maps(preset: HeadPreset, ict_path=None, cache: Path | None = None):
    """(identities * real_views, 3, R, R) real normal maps of the training heads."""
    if cache is not None and cache.is_file():
        return torch.load(cache, weights_only=True)
    ict = load_ict(ict_path)
    id_w = corpus.identity_weights("train", preset.n_identities, len(ict.identity_deltas))
    gen = torch.Generator().manual_seed(preset.seed + 77)
    views = random_views(preset.n_identities * preset.real_views, gen).numpy()
    views = views.reshape(preset.n_identities, preset.real_views, 3, 3)
    jobs = [(ict.source, i, id_w[i], views[i], preset.adv_res) for i in range(len(id_w))]
    with get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        maps = list(tqdm(pool.imap(_maps_job, jobs), total=len(jobs), desc="normal maps"))
    maps = torch.from_numpy(np.concatenate(maps))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(maps, cache.with_suffix(".partial"))
        os.replace(cache.with_suffix(".partial"), cache)
    return maps


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

    def __init__(self, model: HeadModel, n_codes: int, losses: str = "full", preset=None):
        super().__init__()
        self.model = model
        self.codes = nn.Embedding(n_codes, model.cfg.d_id)
        nn.init.normal_(self.codes.weight, 0.0, 0.01)
        self.keep = LOSS_SETS[losses]
        self.preset = preset

    @property
    def adversarial(self) -> bool:
        return "adv" in self.keep and self.model.cfg.family == "triplane"

    def forward(self, ids, batch):
        """(loss, its terms, normal maps for the discriminator or None)."""
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
        loss = sum(ID_LOSS[k] * v for k, v in losses.items() if k in self.keep)
        fake = None
        if self.adversarial and batch.get("views") is not None:
            p, views = self.preset, batch["views"]
            fake = render_normals(
                lambda x, s: self.model.identity(x, cond["id"], s),
                views, p.adv_res, p.adv_samples,
            )  # fmt: skip
        return loss, losses, fake


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
    family: str = "nphm",
    losses: str = "full",
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
        family=family,
    )
    model = HeadModel(cfg)
    id_stage = IdentityStage(model, preset.n_identities, losses, preset)
    exp_stage = ExpressionStage(model, id_stage.codes.weight.detach(), preset.n_expressions)
    disc = d_opt = None
    if id_stage.adversarial:
        maps = f"{preset.adv_res}px_{preset.real_views}views"
        maps_cache = cache.with_name(cache.stem.replace("head_data", "head_maps") + f"_{maps}.pt")
        if rank == 0:
            build_normal_maps(preset, ict_path, maps_cache)
        dist.barrier()
        data["normal_maps"] = build_normal_maps(preset, ict_path, maps_cache).float()
        disc = Discriminator(preset.adv_res)
        d_opt = torch.optim.Adam(disc.parameters(), lr=preset.lr_disc, betas=(0.0, 0.99))
    state_path = out.with_name(out.name + ".train")
    start = {"phase": 0, "step": 0}
    st = torch.load(state_path, weights_only=False) if resume and state_path.is_file() else {}
    if st:
        id_stage.load_state_dict(st["id_stage"])
        exp_stage.load_state_dict(st["exp_stage"], strict=False)
        start = {"phase": st["phase"], "step": st["step"]}
        if disc is not None and "disc" in st:
            disc.load_state_dict(st["disc"])
            d_opt.load_state_dict(st["d_opt"])
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
        parts, last_adv = {}, {}
        for step in bar:
            for g, lr in zip(opt.param_groups, base, strict=True):
                g["lr"] = lr * _lr_factor(step, steps)
            adv = id_stage.adversarial and step % preset.adv_every == 0
            loss, parts, fake = _step(ddp, phase, data, preset, gen, adv)
            if fake is not None:
                disc.requires_grad_(False)
                parts["adv"] = generator_loss(disc, fake)
                loss = loss + ADV_LOSS * parts["adv"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if fake is not None:
                parts["disc"] = _disc_step(disc, d_opt, fake, data, preset, gen, step)
                last_adv = {k: parts[k] for k in ("adv", "disc")}
            elif disc is not None:
                parts.update(last_adv)  # the last adversarial step's, for the log
            if rank == 0 and step % 20 == 0:
                bar.set_postfix({k: f"{v.item():.2e}" for k, v in parts.items()})
            if rank == 0 and (step + 1) % 250 == 0:
                _save_state(state_path, id_stage, exp_stage, opt, phase, step + 1, disc, d_opt)
        if parts:  # empty when resuming at the very end of a phase
            log[["identity", "expression"][phase]] = {k: v.item() for k, v in parts.items()}
        start = {"phase": phase + 1, "step": 0}
        if rank == 0:
            _save_state(state_path, id_stage, exp_stage, None, phase + 1, 0, disc, d_opt)
    result = {}
    if rank == 0:
        result = save_head(
            out, model, id_stage, exp_stage, data, preset_name, time.time() - t0, log, world,
            losses,
        )  # fmt: skip
        state_path.unlink(missing_ok=True)
    dist.teardown()
    return result


def _disc_step(disc, d_opt, fake, data, preset, gen, step):
    """One discriminator update on this step's fake maps and as many real ones; its
    gradients are averaged over the ranks by hand (it lives outside DDP)."""
    maps = data["normal_maps"]
    real = maps[torch.randint(0, len(maps), (len(fake),), generator=gen)]
    disc.requires_grad_(True)
    lazy = preset.r1_every * preset.adv_every
    r1 = preset.r1 * preset.r1_every if step % lazy == 0 else 0.0
    loss = discriminator_loss(disc, fake, real, r1)
    d_opt.zero_grad(set_to_none=True)
    loss.backward()
    dist.average_gradients(disc)
    d_opt.step()
    return loss.detach()


def _save_state(path, id_stage, exp_stage, opt, phase, step, disc=None, d_opt=None):
    st = {
        "id_stage": id_stage.state_dict(),
        "exp_stage": exp_stage.state_dict(),
        "phase": phase,
        "step": step,
    }
    if opt is not None:
        st["opt"] = opt.state_dict()
    if disc is not None:
        st["disc"], st["d_opt"] = disc.state_dict(), d_opt.state_dict()
    torch.save(st, path.with_name(path.name + ".partial"))
    os.replace(path.with_name(path.name + ".partial"), path)


def _step(ddp, phase, data, preset, gen, adv=False):
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
            views=random_views(min(preset.adv_views, b), gen) if adv else None,
        )
        return ddp(ids, batch)
    j = torch.randint(0, len(data["pairs"]), (b,), generator=gen)
    d = data["expression"]
    idx = torch.randint(0, d["posed_pts"].shape[1], (b, preset.n_corr), generator=gen)
    batch = {k: d[k][j[:, None], idx] for k in ("posed_pts", "canon_pts", "on_surface")}
    return *ddp(data["pairs"][j, 0], data["pairs"][j, 1], batch), None


def save_head(
    out, model, id_stage, exp_stage, data, preset_name, seconds, log, world, losses="full"
) -> dict:
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
            "loss_set": losses,
            "loss_weights": {
                "identity": {k: ID_LOSS[k] for k in id_stage.keep if k in ID_LOSS}
                | ({"adv": ADV_LOSS} if id_stage.adversarial else {}),
                "expression": EXP_LOSS,
            },
        },
    }
    sha = checkpoint.save(out, "head_model", content)
    return {"path": str(out), "sha256": sha, "seconds": seconds, "losses": log}
