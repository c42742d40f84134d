"""A differentiable 3D Gaussian rasteriser in plain PyTorch (CPU or any device).

Gaussians (camera-space means and covariances, OpenCV axes) are projected with the local
affine approximation of the pinhole (EWA splatting: Sigma' = J Sigma J^T plus a 0.3 px^2
low-pass); each one's box of reach (3.33 sigmas: beyond, alpha < 1/255) lists the pixel
centres it may touch, the (pixel, Gaussian) pairs are sorted by pixel and front to back,
and every pixel composites its pairs,

    alpha_i = min(0.99, o_i exp(-d^T Sigma'^-1 d / 2)),  C = sum_i c_i alpha_i T_i + T_N bg,

with T_i = prod_{j<i} (1 - alpha_j) and alphas below 1/255 dropped, as 3D Gaussian
splatting does; the products are cumulative sums of logs along the sorted pairs. Work and
memory follow the Gaussians' footprints (on a CPU, small Gaussians in a few hundred pixels
a side: tens of pixels each), not tiles; gradients reach means, covariances, colours and
opacities.
"""

import math

import torch

LOW_PASS = 0.3  # px^2 added to every projected covariance
MIN_ALPHA = 1.0 / 255.0
REACH = math.sqrt(2 * math.log(255.0))  # sigmas beyond which alpha < 1/255 at any opacity
SH_C0, SH_C1 = 0.28209479177387814, 0.4886025119029199


def sh_colour(sh, dirs):
    """RGB of degree-1 spherical harmonics ``sh`` (N, 4, 3) seen along unit ``dirs`` (N, 3)
    (the 3DGS convention: DC, then the y, z, x bands; plus 0.5)."""
    x, y, z = dirs.unbind(1)
    c = SH_C0 * sh[:, 0] - SH_C1 * y[:, None] * sh[:, 1] + SH_C1 * z[:, None] * sh[:, 2]
    return (c - SH_C1 * x[:, None] * sh[:, 3] + 0.5).clamp(min=0.0)


def project(means, covs, fx, fy, cx, cy):
    """(uv (N, 2) px, conic (N, 3): a, b, c of the inverse 2D covariance, reach (N,) px: where
    the Gaussian falls below 1/255 along its major axis)."""
    x, y, z = means.unbind(1)
    zi = 1.0 / z
    uv = torch.stack([fx * x * zi + cx, fy * y * zi + cy], 1)
    zero = torch.zeros_like(z)
    J = torch.stack(
        [fx * zi, zero, -fx * x * zi * zi, zero, fy * zi, -fy * y * zi * zi], 1
    ).view(-1, 2, 3)
    cov = J @ covs @ J.transpose(1, 2)
    a, b, c = cov[:, 0, 0] + LOW_PASS, cov[:, 0, 1], cov[:, 1, 1] + LOW_PASS
    det = (a * c - b * b).clamp(min=1e-12)
    conic = torch.stack([c / det, -b / det, a / det], 1)
    mid = 0.5 * (a + c)
    lam = mid + torch.sqrt((mid * mid - det).clamp(min=0.1))
    return uv, conic, REACH * torch.sqrt(lam)


def _footprints(uv, radius, depth, width, height):
    """(pixel ids, Gaussian ids) of every pixel centre inside a Gaussian's reach (a box),
    sorted by pixel, then front to back."""
    with torch.no_grad():
        lo = (uv - radius[:, None] - 0.5).ceil().long()
        hi = (uv + radius[:, None] - 0.5).floor().long()
        lo[:, 0].clamp_(0, width), lo[:, 1].clamp_(0, height)
        hi[:, 0].clamp_(-1, width - 1), hi[:, 1].clamp_(-1, height - 1)
        nx, ny = (hi[:, 0] - lo[:, 0] + 1).clamp(min=0), (hi[:, 1] - lo[:, 1] + 1).clamp(min=0)
        count = nx * ny
        g = torch.repeat_interleave(torch.arange(len(uv)), count)
        k = torch.arange(len(g)) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        x = lo[g, 0] + k % nx[g]
        y = lo[g, 1] + torch.div(k, nx[g], rounding_mode="floor")
        pixel = y * width + x
        rank = torch.empty_like(depth, dtype=torch.long)
        rank[torch.argsort(depth)] = torch.arange(len(depth))
        order = torch.argsort(pixel * len(depth) + rank[g])
    return pixel[order], g[order]


def rasterize(means, covs, colours, opacities, fx, fy, cx, cy, width, height, bg=None):
    """(image (H, W, 3), alpha (H, W)) of Gaussians with camera-space ``means`` (N, 3),
    ``covs`` (N, 3, 3), ``colours`` (N, 3) and ``opacities`` (N,); ``bg`` (3,) or (H, W, 3)
    shows through (black by default). Gaussians behind 0.01 m are culled."""
    front = means[:, 2] > 0.01
    means, covs, colours, opacities = means[front], covs[front], colours[front], opacities[front]
    uv, conic, radius = project(means, covs, fx, fy, cx, cy)
    pixel, g = _footprints(uv, radius.detach(), means[:, 2].detach(), width, height)
    n = width * height
    centre = torch.stack([pixel % width, torch.div(pixel, width, rounding_mode="floor")], 1)
    d = centre.to(means) + 0.5 - uv[g]
    cn = conic[g]
    power = -0.5 * (cn[:, 0] * d[:, 0] ** 2 + cn[:, 2] * d[:, 1] ** 2)
    power = power - cn[:, 1] * d[:, 0] * d[:, 1]
    a = (opacities[g] * torch.exp(power.clamp(max=0.0))).clamp(max=0.99)
    a = a * (a >= MIN_ALPHA)
    # per pixel, the exclusive product of (1 - a) in front: a cumulative sum of logs along the
    # sorted pairs, less the sum before the pixel's first pair
    log_keep = torch.log1p(-a)
    cum = torch.cumsum(log_keep, 0)
    first = torch.ones_like(pixel, dtype=torch.bool)
    first[1:] = pixel[1:] != pixel[:-1]
    start = torch.cummax(torch.where(first, torch.arange(len(pixel)), 0), 0).values
    before = (cum - log_keep)[start]
    w = a * torch.exp(cum - log_keep - before)
    image = means.new_zeros(n, 3).index_add(0, pixel, w[:, None] * colours[g])
    alpha = means.new_zeros(n).index_add(0, pixel, w)
    image, alpha = image.view(height, width, 3), alpha.view(height, width)
    if bg is not None:
        image = image + (1 - alpha)[..., None] * torch.as_tensor(bg).to(image)
    return image, alpha
