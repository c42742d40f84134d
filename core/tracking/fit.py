"""The joint optimiser of codes and poses over a few frames (``fit_frames``).

For frames b with camera points p and normals n, the pose (R_b, t_b) maps canonical to
camera, x_cam = s R x_can + t (s = 0.2 m per canonical unit). The loss is

    mean_p min(|sdf(R_b^T (p - t_b) / s)|, trunc)                     data
  + w_normal  mean (1 - cos(grad sdf, R_b^T n))                         normals
  + w_anchor  mean_k min(|y_bk - a_k(z_id)| / sigma_bk, 3)                anchors
  + w_face    mean_k min(|y_bk - c_k| / sigma_k, 3)                         face landmarks
  + prior(z_id, z_exp_b)                                                codes
  + w_smooth_* (|z_b - z_b-1|^2, |R_b - R_b-1|^2 / 2, |t_b - t_b-1|^2 / s^2)  time

The anchor term reads the frames' landmarks l_bk (where the encoder puts each of the
identity model's anchors in the frame, with its expected error sigma_bk): mapped into the
posed canonical frame and through the backward deformation, y = x + delta(x) with
x = R_b^T (l_bk - t_b) / s, each must land on its anchor a_k of the identity (neutral)
head; a landmark more than three of its spreads away stops pulling. An identity fit
leaves the term out: depth-only landmarks are too coarse to shape a head, or to pose the
keyframes it is fitted on.
The face landmark term is the same with the colour stream's landmarks lifted to 3D
(``face_landmarks``): each must land on its place c_k on the identity's neutral head.
The temporal chain includes fixed reference states before and after the frames
(the previous frame's prediction when tracking, the window's neighbours when refining).
A preset that thins points (``thin_keep`` < 1) keeps, after the first step, a share of
those already within ``thin_below_mm`` and weighs them up: the data mean is then weighted.
The diffusion prior's timesteps and noise are drawn from a generator seeded with ``seed``.
Rotations are updated as exp([w]x) R_0, translations as t_0 + s dt.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .rigid import SCALE


@dataclass
class State:
    z_exp: np.ndarray  # (D,)
    R: np.ndarray  # (3, 3) canonical -> camera
    t: np.ndarray  # (3,) metres


class CodePrior:
    """The code regulariser: the diffusion priors (``core.prior``) when given, else L2 of
    the codes standardised by the codebook statistics (NPHM's latent regulariser)."""

    def __init__(self, content, preset, diffusion=None):
        books = content["codebooks"]
        self.id_mean, self.id_std = books["id"].mean(0), books["id"].std(0) + 1e-6
        self.exp_mean, self.exp_std = books["exp"][0], books["exp"].std(0) + 1e-6
        self.diffusion, self.preset = diffusion, preset
        if diffusion is not None:
            diffusion.weights = {"id": preset.w_prior_id, "exp": preset.w_prior_exp}

    def loss(self, z_id, z_exp, generator=None):
        if self.diffusion is not None:
            return self.diffusion.loss(z_id=z_id, z_exp=z_exp, generator=generator)[0]
        p = self.preset
        out = p.w_l2_exp * (((z_exp - self.exp_mean) / self.exp_std) ** 2).mean()
        if z_id is not None:
            out = out + p.w_l2_id * (((z_id - self.id_mean) / self.id_std) ** 2).mean()
        return out


def _skew_exp(w):
    """Rotations exp([w]x) (B, 3, 3) of rotation vectors w (B, 3), by Rodrigues' formula
    (series near 0; several times cheaper than a general matrix exponential)."""
    zero = torch.zeros_like(w[:, 0])
    k = torch.stack(
        [zero, -w[:, 2], w[:, 1], w[:, 2], zero, -w[:, 0], -w[:, 1], w[:, 0], zero], 1
    ).view(-1, 3, 3)
    th2 = (w * w).sum(1)
    th = (th2 + 1e-12).sqrt()
    small = th2 < 1e-4
    a = torch.where(small, 1 - th2 / 6, th.sin() / th)
    b = torch.where(small, 0.5 - th2 / 24, (1 - th.cos()) / th2.clamp(min=1e-4))
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


def _sample(obs, n, rng):
    pick = rng.choice(len(obs.points), min(n, len(obs.points)), replace=False)
    return obs.points[pick], obs.normals[pick]


def fit_frames(
    model,
    z_id,
    observations,
    init,
    preset,
    prior,
    steps,
    fit_identity=False,
    before=None,
    after=None,
    seed=0,
    cond_id=None,
    refinement=None,
    cache=None,
):
    """Fit B frames jointly; returns (z_id, [State] * B, fit error per frame in mm, steps run).

    ``init`` holds a State per frame; ``before`` / ``after`` optional fixed neighbour States
    for the temporal terms. With ``fit_identity`` the identity code is optimised too;
    without, ``cond_id`` (``model.identity.condition`` of ``z_id``) saves recomputing it.
    ``refinement``: the take's correction of the canonical SDF (``model.refinement``);
    ``cache``: the fixed identity's canonical SDF, refinement included (``model.sdf_cache``),
    served instead of the network.
    """
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)  # the diffusion prior's t and noise
    b = len(observations)
    samples = [_sample(o, preset.n_points, rng) for o in observations]
    counts = [len(p) for p, _ in samples]
    pts = torch.as_tensor(np.concatenate([p for p, _ in samples]), dtype=torch.float32)
    nrm = torch.as_tensor(np.concatenate([n for _, n in samples]), dtype=torch.float32)
    idx = torch.repeat_interleave(torch.arange(b), torch.tensor(counts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    nsel = torch.as_tensor(
        np.concatenate(
            [s + np.arange(min(preset.n_normal, c)) for s, c in zip(starts, counts, strict=True)]
        )
    ).long()

    zi = torch.as_tensor(z_id, dtype=torch.float32).view(1, -1).clone().requires_grad_(fit_identity)
    ze = torch.as_tensor(np.stack([s.z_exp for s in init]), dtype=torch.float32).requires_grad_(
        True
    )
    R0 = torch.as_tensor(np.stack([s.R for s in init]), dtype=torch.float32)
    t0 = torch.as_tensor(np.stack([s.t for s in init]), dtype=torch.float32)
    w = torch.zeros(b, 3, requires_grad=True)
    dt = torch.zeros(b, 3, requires_grad=True)
    groups = [
        {"params": [ze], "lr": preset.lr_exp},
        {"params": [w], "lr": preset.lr_rot},
        {"params": [dt], "lr": preset.lr_trans},
    ]
    if fit_identity:
        groups.append({"params": [zi], "lr": preset.lr_id})
    opt = torch.optim.Adam(groups)
    if cond_id is None or fit_identity:
        with torch.no_grad():
            cond_id = model.identity.condition(zi)
    refs = [r for r in (before, after) if r is not None]
    ref_z = (
        {
            k: torch.as_tensor(np.stack([getattr(r, k) for r in refs]), dtype=torch.float32)
            for k in ("z_exp", "R", "t")
        }
        if refs
        else None
    )

    def forward():
        cond = _condition(model, zi, ze, model.identity.condition(zi) if fit_identity else cond_id)
        R = _skew_exp(w) @ R0
        t = t0 + SCALE * dt
        return cond, R, t, _canonical(pts, R, t, idx)

    anchors = None if fit_identity else _landmarks(observations, preset)
    faces = None if fit_identity else _face_landmarks(observations, preset)
    full = pts, idx
    wts = torch.ones(len(pts))
    n_run = 0
    for n_run in range(1, steps + 1):
        cond, R, t, x = forward()
        sdf = model.sdf(x, cond, idx, refinement, cache)
        res = sdf.abs()
        if preset.early_stop_mm and n_run > 1:
            if _weighted_median(res.detach(), wts) * SCALE * 1000 < preset.early_stop_mm:
                break
        loss = (res.clamp(max=preset.trunc) * wts).sum() / wts.sum()
        if len(nsel) and preset.w_normal:
            xn = x[nsel]
            f = model.sdf(xn, cond, idx[nsel], refinement, cache)
            g = torch.autograd.grad(f.sum(), xn, create_graph=True)[0]
            n_can = torch.einsum("ni,nij->nj", nrm[nsel], R.index_select(0, idx[nsel]))
            loss = loss + preset.w_normal * (1 - F.cosine_similarity(g, n_can)).mean()
        if anchors is not None:
            loss = loss + preset.w_anchor * _anchor_term(model, cond, R, t, *anchors)
        if faces is not None:
            loss = loss + preset.w_face * _landmark_term(model, cond, R, t, *faces)
        loss = loss + prior.loss(zi if fit_identity else None, ze, gen)
        loss = loss + _smoothness(ze, R, t, preset, before, after, ref_z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if n_run == 1 and preset.thin_keep < 1:
            keep, wts = _thin(res.detach(), counts, preset, rng)
            pts, nrm, idx = pts[keep], nrm[keep], idx[keep]
            nsel = torch.searchsorted(keep, nsel)
    pts, idx = full
    with torch.no_grad():
        cond, R, t, x = forward()
        res = model.sdf(x, cond, idx, refinement, cache).abs() * SCALE * 1000
    errors = [float(r.median()) for r in torch.split(res, counts)]
    states = [
        State(
            ze[i].detach().cpu().numpy().copy(),
            R[i].cpu().numpy().astype(np.float64),
            t[i].cpu().numpy().astype(np.float64),
        )
        for i in range(b)
    ]
    return zi.detach()[0].cpu().numpy().copy(), states, errors, n_run


def fit_errors(model, z_id, obs, states, n_points, seed, cond_id=None, cache=None) -> list[float]:
    """The fit error (median |sdf|, mm) of one observation under each of several states, on
    the points ``fit_frames`` samples with the same ``seed`` and ``n_points``; one pass
    (``cache`` as in ``fit_frames``)."""
    pts, _ = _sample(obs, n_points, np.random.default_rng(seed))
    b, n = len(states), len(pts)
    with torch.no_grad():
        zi = torch.as_tensor(z_id, dtype=torch.float32).view(1, -1)
        ze = torch.as_tensor(np.stack([s.z_exp for s in states]), dtype=torch.float32)
        cond = _condition(model, zi, ze, cond_id or model.identity.condition(zi))
        R = torch.as_tensor(np.stack([s.R for s in states]), dtype=torch.float32)
        t = torch.as_tensor(np.stack([s.t for s in states]), dtype=torch.float32)
        idx = torch.arange(b).repeat_interleave(n)
        x = _canonical(torch.as_tensor(pts, dtype=torch.float32).repeat(b, 1), R, t, idx)
        res = model.sdf(x, cond, idx, canonical=cache).abs().view(b, n) * SCALE * 1000
    return res.median(1).values.tolist()


def _landmarks(observations, preset):
    """The anchor term's inputs: landmarks (M, 3), their frame and anchor index (M,) and
    inverse spreads (M,), canonical units; None without landmarks or weight."""
    have = [i for i, o in enumerate(observations) if o.landmarks is not None]
    if not preset.w_anchor or not have:
        return None
    n = len(observations[have[0]].landmarks)
    lm = np.concatenate([observations[i].landmarks for i in have])
    inv = SCALE / np.concatenate([observations[i].landmark_spread for i in have])
    frame, anchor = np.repeat(have, n), np.tile(np.arange(n), len(have))
    as_t = torch.as_tensor
    return as_t(lm, dtype=torch.float32), as_t(frame), as_t(anchor), as_t(inv, dtype=torch.float32)


def _face_landmarks(observations, preset):
    """The face landmark term's inputs: points (M, 3) camera, their frame (M,), canonical
    targets (M, 3) and inverse spreads (M,) in canonical units; None without any."""
    have = [i for i, o in enumerate(observations) if o.face_fit is not None]
    if not preset.w_face or not have:
        return None
    fits = [observations[i].face_fit for i in have]
    frame = np.concatenate([np.full(len(f[0]), i) for i, f in zip(have, fits, strict=True)])
    as_t = lambda x: torch.as_tensor(np.concatenate(x), dtype=torch.float32)  # noqa: E731
    return (as_t([f[0] for f in fits]), torch.as_tensor(frame), as_t([f[1] for f in fits]),
            SCALE / as_t([f[2] for f in fits]))  # fmt: skip


def _landmark_term(model, cond, R, t, pts, frame, target, inv):
    """Spread-scaled distance, capped at three spreads, of camera points (M, 3) of frames
    ``frame`` (M,), mapped through the pose and the backward deformation, to their
    canonical targets (M, 3)."""
    x = _canonical(pts, R, t, frame)
    d = (x + model.deform(x, cond, frame) - target).norm(dim=1)
    return (d * inv).clamp(max=3.0).mean()


def _anchor_term(model, cond, R, t, lm, frame, anchor, inv):
    """The landmark term with each landmark's anchor of the identity as its target."""
    return _landmark_term(model, cond, R, t, lm, frame, cond["id"]["anchors"][frame, anchor], inv)


def _condition(model, zi, ze, cond_id):
    """Per-frame conditioning from the identity code (1, D), its conditioning and the
    frames' expression codes (B, D)."""
    b = len(ze)
    cid = {k: v.expand(b, *v.shape[1:]) for k, v in cond_id.items()}
    return {"id": cid, "exp": model.expression.condition(ze, zi.expand(b, -1), cid["anchors"])}


def _canonical(pts, R, t, idx):
    """Camera points to canonical units under their frame's pose (x = R^T (p - t) / s)."""
    return torch.einsum("ni,nij->nj", pts - t.index_select(0, idx), R.index_select(0, idx)) / SCALE


def _thin(res, counts, preset, rng):
    """Fewer points where the start already fits: of the points (beyond each frame's
    normal-term ones) within ``thin_below_mm`` of the surface keep a ``thin_keep`` share,
    weighted up by its inverse so the loss stays an estimate of the full mean."""
    good = (res * SCALE * 1000 < preset.thin_below_mm).cpu().numpy()
    lead = np.zeros(len(res), bool)
    for s, c in zip(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts, strict=True):
        lead[s : s + min(preset.n_normal, c)] = True
    drop = good & ~lead & (rng.random(len(res)) >= preset.thin_keep)
    keep = np.flatnonzero(~drop)
    wts = np.where(good & ~lead, 1.0 / preset.thin_keep, 1.0)[keep]
    return torch.as_tensor(keep), torch.as_tensor(wts, dtype=torch.float32)


def _weighted_median(x, w):
    order = torch.argsort(x)
    c = torch.cumsum(w[order], 0)
    return float(x[order][torch.searchsorted(c, 0.5 * c[-1]).clamp(max=len(x) - 1)])


def _smoothness(ze, R, t, preset, before, after, ref):
    if not (preset.w_smooth_exp or preset.w_smooth_rot or preset.w_smooth_trans):
        return 0.0
    zs, Rs, ts = [ze], [R], [t]
    if before is not None:
        zs, Rs, ts = [ref["z_exp"][:1], *zs], [ref["R"][:1], *Rs], [ref["t"][:1], *ts]
    if after is not None:
        zs, Rs, ts = [*zs, ref["z_exp"][-1:]], [*Rs, ref["R"][-1:]], [*ts, ref["t"][-1:]]
    z, Rm, tm = torch.cat(zs), torch.cat(Rs), torch.cat(ts)
    if len(z) < 2:
        return 0.0
    return (
        preset.w_smooth_exp * ((z[1:] - z[:-1]) ** 2).sum(1).mean()
        + preset.w_smooth_rot * 0.5 * ((Rm[1:] - Rm[:-1]) ** 2).sum((1, 2)).mean()
        + preset.w_smooth_trans * (((tm[1:] - tm[:-1]) / SCALE) ** 2).sum(1).mean()
    )
