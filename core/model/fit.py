"""Fitting identity and expression codes to oriented surface points (auto-decoder inference).

Minimises mean |sdf(p)| over the points, plus 1 - cos between the SDF gradient and the
given normals on a subset, plus a pull of each code toward its codebook mean. Codes start
at the codebook means (the identity) and the neutral expression code.
"""

import torch
import torch.nn.functional as F


def code_stats(content: dict) -> dict:
    books = content["codebooks"]
    return {
        "id_mean": books["id"].mean(0),
        "id_std": books["id"].std(0) + 1e-6,
        "exp_neutral": books["exp"][0],
        "exp_std": books["exp"].std(0) + 1e-6,
    }


def fit_codes(
    model,
    content,
    points,
    normals=None,
    steps=300,
    batch=4096,
    n_normal=512,
    lr=3e-3,
    w_normal=0.05,
    w_reg=1e-3,
    fit_identity=True,
    z_id=None,
    seed=0,
):
    """Codes (z_id, z_exp) for canonical-space points (N, 3) and optional normals (N, 3)."""
    st = code_stats(content)
    gen = torch.Generator().manual_seed(seed)
    pts = torch.as_tensor(points, dtype=torch.float32)
    nrm = None if normals is None else torch.as_tensor(normals, dtype=torch.float32)
    z_id = (st["id_mean"] if z_id is None else torch.as_tensor(z_id)).clone().view(1, -1)
    z_exp = st["exp_neutral"].clone().view(1, -1)
    z_id.requires_grad_(fit_identity)
    z_exp.requires_grad_(True)
    params = [z_exp] + ([z_id] if fit_identity else [])
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    for _ in range(steps):
        idx = torch.randint(0, len(pts), (batch,), generator=gen)
        x = pts[idx]
        cond = model.condition(z_id, z_exp)
        loss = model.sdf(x, cond).abs().mean()
        if nrm is not None and w_normal > 0:
            xg = x[:n_normal].clone().requires_grad_(True)
            f = model.sdf(xg, cond)
            g = torch.autograd.grad(f.sum(), xg, create_graph=True)[0]
            loss = loss + w_normal * (1 - F.cosine_similarity(g, nrm[idx[:n_normal]])).mean()
        reg = (((z_exp - st["exp_neutral"]) / st["exp_std"]) ** 2).mean()
        if fit_identity:
            reg = reg + (((z_id - st["id_mean"]) / st["id_std"]) ** 2).mean()
        loss = loss + w_reg * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return z_id.detach()[0], z_exp.detach()[0]
