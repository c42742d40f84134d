"""Fitting a take's Gaussian appearance head to its colour frames (``dphm appearance``).

Every tracked frame of the take is matched to the capture's colour frame of the same
timestamp; the identity mesh is posed per frame and moved into the colour camera by the
depth-to-colour calibration. The head's silhouette (the posed mesh rasterised) crops each
image to the head, downsampled so its longer side is at most ``max_side`` pixels, and
masks the loss. Every ``HOLDOUT``-th frame is never used for fitting (the benchmark's
held-out frames). Loss: L1 + 0.2 (1 - SSIM) inside the silhouette, opacity outside it,
and offsets beyond a few millimetres from the surface. The ``projected`` baseline colours
each mesh vertex by averaging the fitting frames that see it; it also starts the
Gaussians' colours.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..capture.frame import Intrinsics
from ..capture.raster import rasterize as raster_mesh
from ..data.surface import sample_triangles
from ..errors import DPHMError
from ..geometry.sampling import triangle_areas
from . import GAUSSIANS, ITERATIONS
from .gaussians import GaussianHead
from .splat import rasterize, sh_colour

HOLDOUT = 5  # frames i with i % HOLDOUT == HOLDOUT - 1 are held out
SSIM_WEIGHT = 0.2
OFFSET_M = 0.003  # offsets beyond this are penalised
LR = {"offset": 1e-4, "log_scale": 5e-3, "quat": 1e-3, "opacity_logit": 5e-2, "sh": 5e-3}


@dataclass
class View:
    """One frame as the fitting sees it: the cropped colour image and its camera."""

    index: int  # frame of the take
    image: torch.Tensor  # (h, w, 3) float in [0, 1]
    mask: torch.Tensor  # (h, w) bool: the head's silhouette
    vertices: torch.Tensor  # (V, 3) posed mesh, colour camera, metres
    camera: tuple  # fx, fy, cx, cy, w, h of the crop
    depth_to_color: np.ndarray  # (4, 4)


def match_frames(take, source, name):
    """{take frame: colour frame} of ``source`` (frames) by timestamp (within a third of a
    frame period); one clear error, naming ``name``, when the capture has no colour, no
    calibration, or frames that do not match the take."""
    times = np.asarray(take["timestamps"], np.float64)
    period = float(np.median(np.diff(times))) if len(times) > 1 else 1 / 30
    out, coloured = {}, 0
    for frame in source:
        if frame.color is None:  # a camera may drop a colour frame now and then
            continue
        coloured += 1
        if frame.color_intrinsics is None or frame.depth_to_color is None:
            raise DPHMError(f"{name}: colour without a depth-to-colour calibration")
        i = int(np.argmin(np.abs(times - frame.timestamp)))
        if abs(times[i] - frame.timestamp) < period / 3:
            out[i] = frame
    if not coloured:
        raise DPHMError(f"{name}: no colour frames (record or convert with --color)")
    if len(out) < min(len(times), 2):
        raise DPHMError(f"{name}: its frames do not match the take's timestamps "
                        f"({len(out)} of {len(times)} found)")  # fmt: skip
    return out


def _crop(frame, verts_c, faces, max_side):
    """(image, mask, camera) of the head's box in the colour frame, downsampled."""
    intr = frame.color_intrinsics
    ras = raster_mesh(verts_c, faces, intr, cull_back=True)
    hit = ras.tri_id >= 0
    if hit.sum() < 16:
        return None
    ys, xs = np.nonzero(hit)
    k = max(1, math.ceil((max(np.ptp(ys), np.ptp(xs)) + 16) / max_side))
    x0, y0 = max(xs.min() - 8, 0), max(ys.min() - 8, 0)
    w = min((xs.max() + 9 - x0 + k - 1) // k * k, (intr.width - x0) // k * k)
    h = min((ys.max() + 9 - y0 + k - 1) // k * k, (intr.height - y0) // k * k)
    img = torch.from_numpy(frame.color[y0 : y0 + h, x0 : x0 + w].astype(np.float32) / 255.0)
    msk = torch.from_numpy(hit[y0 : y0 + h, x0 : x0 + w].astype(np.float32))
    if k > 1:
        img = F.avg_pool2d(img.permute(2, 0, 1)[None], k)[0].permute(1, 2, 0)
        msk = F.avg_pool2d(msk[None, None], k)[0, 0]
    cam = (intr.fx / k, intr.fy / k, (intr.cx - x0) / k, (intr.cy - y0) / k, w // k, h // k)
    return img.contiguous(), msk > 0.5, cam


def prepare(model, take, source, name, resolution=128, max_side=160):
    """(identity mesh (V, 3) canonical units, faces, views of every matched frame) of the
    take and its capture's frames ``source`` (``name`` for errors)."""
    from ..tracking.export import identity_mesh, pose_vertices

    frames = match_frames(take, source, name)
    v, f = identity_mesh(model, take, resolution)
    views = []
    found = np.isfinite(np.asarray(take["fit_error_mm"], np.float64))
    for i, verts in enumerate(pose_vertices(model, take, v)):
        if i not in frames or not found[i]:
            continue
        T = np.asarray(frames[i].depth_to_color, np.float64)
        vc = verts @ T[:3, :3].T + T[:3, 3]
        crop = _crop(frames[i], vc, f, max_side)
        if crop is not None:
            vc = torch.from_numpy(vc.astype(np.float32))
            views.append(View(i, crop[0], crop[1], vc, crop[2], T))
    if not views:
        raise DPHMError(f"{name}: the head is not in view of the colour camera")
    return v, f, views


def camera_intrinsics(camera) -> Intrinsics:
    """A view's ``camera`` tuple as the rasteriser's pinhole."""
    fx, fy, cx, cy, w, h = camera
    return Intrinsics(fx, fy, cx, cy, int(w), int(h))


def split(views):
    """(fitting views, held-out views): every ``HOLDOUT``-th frame of the take held out."""
    held = [w for w in views if w.index % HOLDOUT == HOLDOUT - 1]
    return [w for w in views if w.index % HOLDOUT != HOLDOUT - 1], held


def projected_colours(faces, views):
    """(V, 3) colours of the mesh vertices averaged over the views that see them (the
    ``projected`` baseline), and (V,) which were seen at all."""
    n = int(faces.max()) + 1
    total, count = np.zeros((n, 3)), np.zeros(n)
    for w in views:
        fx, fy, cx, cy, width, height = w.camera
        intr = camera_intrinsics(w.camera)
        v = w.vertices.numpy().astype(np.float64)
        ras = raster_mesh(v, faces, intr, cull_back=True)
        u = np.round(fx * v[:, 0] / v[:, 2] + cx - 0.5).astype(int)
        r = np.round(fy * v[:, 1] / v[:, 2] + cy - 0.5).astype(int)
        ok = (u >= 0) & (u < width) & (r >= 0) & (r < height)
        seen = np.zeros(n, bool)
        depth = ras.depth[r[ok], u[ok]]
        seen[ok] = (depth > 0) & (v[ok, 2] < depth + 0.004)
        total[seen] += w.image.numpy()[r[seen], u[seen]]
        count[seen] += 1
    colours = np.full((n, 3), 0.5)
    colours[count > 0] = total[count > 0] / count[count > 0, None]
    return colours, count > 0


def render_view(head: GaussianHead, w: View):
    """(image (h, w, 3), alpha (h, w)) of the Gaussians in view ``w`` (black background)."""
    means, covs, frames = head.place(w.vertices)
    dirs = torch.einsum("nji,nj->ni", frames, F.normalize(means.detach(), dim=1))
    colours = sh_colour(head.sh, dirs)
    fx, fy, cx, cy, width, height = w.camera
    return rasterize(means, covs, colours, head.opacity, fx, fy, cx, cy, width, height)


def ssim_map(a, b):
    """SSIM per pixel of images (h, w, 3) in [0, 1] (11x11 Gaussian window, sigma 1.5)."""
    x = torch.arange(11, dtype=a.dtype) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = (g / g.sum())[:, None] @ (g / g.sum())[None]
    win = g.expand(3, 1, 11, 11)
    a, b = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]

    def blur(t):
        return F.conv2d(F.pad(t, (5, 5, 5, 5), mode="replicate"), win, groups=3)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return (num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))[0].mean(0)


def image_scores(pred, w: View) -> dict:
    """PSNR (dB) and SSIM of a rendered view against the camera, inside the silhouette."""
    m = w.mask
    target = w.image * m[..., None]
    mse = float(((pred - target) ** 2)[m].mean())
    return {"psnr": 10 * math.log10(1.0 / max(mse, 1e-12)),
            "ssim": float(ssim_map(pred, target)[m].mean())}  # fmt: skip


def loss_of(head, w: View):
    pred, alpha = render_view(head, w)
    m = w.mask
    target = w.image * m[..., None]
    l1 = (pred - target).abs()[m].mean()
    dssim = 1 - ssim_map(pred, target)[m].mean()
    outside = (alpha * (~m)).sum() / max(int((~m).sum()), 1)
    offset = F.relu(head.offset.norm(dim=1) - OFFSET_M).pow(2).mean() / OFFSET_M**2
    return (1 - SSIM_WEIGHT) * l1 + SSIM_WEIGHT * dssim + 0.1 * outside + 0.1 * offset


def fit(v, f, views, n_gaussians=GAUSSIANS, iterations=ITERATIONS, seed=0, progress=None):
    """The Gaussian head fitted to the fitting views; ``progress(done, total, eta_s)``."""
    train, _ = split(views)
    if not train:
        raise DPHMError("no frame left to fit: a take needs at least two colour frames")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    verts0 = train[0].vertices.numpy()
    tri, bary, _ = sample_triangles(verts0, f, n_gaussians, rng)
    colours, _ = projected_colours(f, train)
    start = np.einsum("nk,nkd->nd", bary, colours[f[tri]])
    spacing = float(np.sqrt(triangle_areas(verts0, f).sum() / n_gaussians))
    head = GaussianHead(f, tri, bary, start, spacing)
    opt = torch.optim.Adam([{"params": [p], "lr": LR[n]} for n, p in head.named_parameters()])
    t0 = time.perf_counter()
    order = rng.permutation(iterations) % len(train)
    for it in range(iterations):
        loss = loss_of(head, train[order[it]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None and (it % 10 == 0 or it == iterations - 1):
            spent = time.perf_counter() - t0
            progress(it + 1, iterations, spent / (it + 1) * (iterations - it - 1))
    return head.eval().requires_grad_(False)
