"""Inverting the backward expression deformation: from canonical points to posed points.

The head model maps a posed point x to canonical space by x + delta(x). A canonical mesh
vertex c is posed by solving x + delta(x) = c: fixed-point steps x <- c - delta(x) (one
forward pass each; they converge where delta is a contraction), then damped Newton steps
with the autograd Jacobian for the points that are still off. Points of one mesh keep
their order, so every posed frame shares the canonical mesh's topology.
"""

import numpy as np
import torch

from ..errors import DPHMError


class InversionError(DPHMError):
    """Some points did not converge; ``posed`` and ``residual`` hold the best found."""

    def __init__(self, message, posed, residual):
        super().__init__(message)
        self.posed, self.residual = posed, residual


def invert_deformation(
    model,
    cond,
    canonical_points,
    init=None,
    iters=30,
    newton_iters=10,
    tol=1e-5,
    batch=65_536,
    strict=True,
):
    """(posed (N, 3), residual (N,)) with posed + delta(posed) = canonical_points.

    ``model.deform(x, cond)`` gives the offsets delta; ``init`` (N, 3) is a starting guess
    (e.g. the previous frame's solution). The residual is |x + delta(x) - c| in the
    model's units. With ``strict``, points whose residual stays above ``tol`` raise an
    ``InversionError`` that carries the result; otherwise the caller reads the residual.
    """
    c = torch.as_tensor(np.asarray(canonical_points), dtype=torch.float32)
    x = c.clone() if init is None else torch.as_tensor(np.asarray(init), dtype=torch.float32)
    x = x.clone()

    def residual(points, targets):
        with torch.no_grad():
            d = torch.cat([model.deform(p, cond) for p in torch.split(points, batch)])
        return points + d - targets

    r = residual(x, c)
    err = r.norm(dim=1)
    active = torch.nonzero(err > tol).squeeze(1)
    for _ in range(iters):  # fixed point: x <- c - delta(x)
        if len(active) == 0:
            break
        x[active] -= r[active]
        r[active] = residual(x[active], c[active])
        err[active] = r[active].norm(dim=1)
        active = active[err[active] > tol]
    for _ in range(newton_iters):  # damped Newton on what is left
        if len(active) == 0:
            break
        xa, ra, ea = x[active], r[active], err[active]
        jac = torch.cat([_jacobian(model, cond, p) for p in torch.split(xa, batch)])
        eye = torch.eye(3).expand_as(jac)
        step = torch.linalg.lstsq(eye + jac, ra.unsqueeze(2)).solution.squeeze(2)
        scale = torch.ones(len(active), 1)
        for _ in range(8):  # halve the step where the residual would grow
            trial = xa - scale * step
            rt = residual(trial, c[active])
            et = rt.norm(dim=1)
            worse = et >= ea
            if not worse.any():
                break
            scale[worse] *= 0.5
        better = et < ea
        x[active[better]], r[active[better]] = trial[better], rt[better]
        err[active[better]] = et[better]
        active = active[err[active] > tol]
    posed, res = x.cpu().numpy(), err.cpu().numpy()
    if strict and len(active):
        raise InversionError(
            f"inverse deformation did not converge for {len(active)} of {len(c)} points "
            f"(max residual {res.max():.2e} > tol {tol:.0e})",
            posed,
            res,
        )
    return posed, res


def _jacobian(model, cond, x):
    """(M, 3, 3) d delta / dx at points x (M, 3)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        d = model.deform(x, cond)
        rows = [torch.autograd.grad(d[:, k].sum(), x, retain_graph=k < 2)[0] for k in range(3)]
    return torch.stack(rows, 1)
