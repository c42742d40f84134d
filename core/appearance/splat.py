"""A differentiable 3D Gaussian rasteriser in plain PyTorch (CPU or any device).

Gaussians (camera-space means and covariances, OpenCV axes) are projected with the local
affine approximation of the pinhole (EWA splatting: Sigma' = J Sigma J^T plus a 0.3 px^2
low-pass), binned into 16-pixel tiles by their 3-sigma extent and sorted front to back in
each tile; every pixel composites its tile's Gaussians,

    alpha_i = min(0.99, o_i exp(-d^T Sigma'^-1 d / 2)),  C = sum_i c_i alpha_i T_i + T_N bg,

with T_i = prod_{j<i} (1 - alpha_j) and alphas below 1/255 dropped, as 3D Gaussian
splatting does. Tiles are padded to the fullest one's count and processed in chunks, so
memory stays bounded; gradients reach means, covariances, colours and opacities.
"""

import torch

TILE = 16
LOW_PASS = 0.3  # px^2 added to every projected covariance
MIN_ALPHA = 1.0 / 255.0
SH_C0, SH_C1 = 0.28209479177387814, 0.4886025119029199


def sh_colour(sh, dirs):
    """RGB of degree-1 spherical harmonics ``sh`` (N, 4, 3) seen along unit ``dirs`` (N, 3)
    (the 3DGS convention: DC, then the y, z, x bands; plus 0.5)."""
    x, y, z = dirs.unbind(1)
    c = SH_C0 * sh[:, 0] - SH_C1 * y[:, None] * sh[:, 1] + SH_C1 * z[:, None] * sh[:, 2]
    return (c - SH_C1 * x[:, None] * sh[:, 3] + 0.5).clamp(min=0.0)


def project(means, covs, fx, fy, cx, cy):
    """(uv (N, 2) px, conic (N, 3): a, b, c of the inverse 2D covariance, radius (N,) px)."""
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
    return uv, conic, 3.0 * torch.sqrt(lam)


def _pairs(uv, radius, depth, width, height):
    """(tile ids, Gaussian ids) of every overlap, sorted by tile then depth; tile grid."""
    tw, th = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
    with torch.no_grad():
        lo = ((uv - radius[:, None]) / TILE).floor().long()
        hi = ((uv + radius[:, None]) / TILE).floor().long()
        lo[:, 0].clamp_(0, tw), lo[:, 1].clamp_(0, th)
        hi[:, 0].clamp_(-1, tw - 1), hi[:, 1].clamp_(-1, th - 1)
        nx, ny = (hi[:, 0] - lo[:, 0] + 1).clamp(min=0), (hi[:, 1] - lo[:, 1] + 1).clamp(min=0)
        count = nx * ny
        g = torch.repeat_interleave(torch.arange(len(uv)), count)
        k = torch.arange(len(g)) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        tx = lo[g, 0] + k % nx[g]
        ty = lo[g, 1] + torch.div(k, nx[g], rounding_mode="floor")
        tile = ty * tw + tx
        rank = torch.empty_like(depth, dtype=torch.long)
        rank[torch.argsort(depth)] = torch.arange(len(depth))
        order = torch.argsort(tile * len(depth) + rank[g])
    return tile[order], g[order], (tw, th)


def rasterize(means, covs, colours, opacities, fx, fy, cx, cy, width, height, bg=None,
              chunk=16):  # fmt: skip
    """(image (H, W, 3), alpha (H, W)) of Gaussians with camera-space ``means`` (N, 3),
    ``covs`` (N, 3, 3), ``colours`` (N, 3) and ``opacities`` (N,); ``bg`` (3,) or (H, W, 3)
    shows through (black by default). Gaussians behind 0.01 m are culled."""
    front = means[:, 2] > 0.01
    means, covs, colours, opacities = means[front], covs[front], colours[front], opacities[front]
    uv, conic, radius = project(means, covs, fx, fy, cx, cy)
    tile, g, (tw, th) = _pairs(uv, radius.detach(), means[:, 2].detach(), width, height)
    image = means.new_zeros(th * TILE, tw * TILE, 3)
    alpha_img = means.new_zeros(th * TILE, tw * TILE)
    if len(g):
        tiles, counts = torch.unique_consecutive(tile, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(g)) - torch.repeat_interleave(starts, counts)
        row = torch.repeat_interleave(torch.arange(len(tiles)), counts)
        index = torch.full((len(tiles), int(counts.max())), -1, dtype=torch.long)
        index[row, slot] = g
        by_count = torch.argsort(counts)  # chunks of similar counts pad little
        tiles, counts, index = tiles[by_count], counts[by_count], index[by_count]
        py, px = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
        py, px = py.reshape(-1), px.reshape(-1)
        local = torch.stack([px, py], 1).to(means) + 0.5  # pixel centres
        image, alpha_img = image.view(-1, 3), alpha_img.view(-1)
        for s in range(0, len(tiles), chunk):
            t = tiles[s : s + chunk]
            idx = index[s : s + chunk, : int(counts[s : s + chunk].max())]
            valid = idx >= 0
            gi = idx.clamp(min=0)
            origin = torch.stack([t % tw, torch.div(t, tw, rounding_mode="floor")], 1) * TILE
            pix = origin[:, None, :].to(means) + local[None]  # (T, P, 2)
            d = pix[:, :, None, :] - uv[gi][:, None, :, :]  # (T, P, K, 2)
            cn = conic[gi][:, None]  # (T, 1, K, 3)
            power = -0.5 * (cn[..., 0] * d[..., 0] ** 2 + cn[..., 2] * d[..., 1] ** 2)
            power = power - cn[..., 1] * d[..., 0] * d[..., 1]
            a = (opacities[gi][:, None] * torch.exp(power.clamp(max=0.0))).clamp(max=0.99)
            a = a * (valid[:, None] & (a >= MIN_ALPHA))
            # exclusive cumulative product of (1 - a) as a cumulative sum of logs (a cheaper
            # backward than cumprod's)
            log_keep = torch.log1p(-a)
            w = a * torch.exp(torch.cumsum(log_keep, -1) - log_keep)  # (T, P, K)
            rgb = torch.einsum("tpk,tkc->tpc", w, colours[gi])
            cover = w.sum(-1)
            flat = ((origin[:, None, 1] + py) * (tw * TILE) + origin[:, None, 0] + px).reshape(-1)
            image = image.index_copy(0, flat, rgb.reshape(-1, 3))
            alpha_img = alpha_img.index_copy(0, flat, cover.reshape(-1))
        image, alpha_img = image.view(th * TILE, tw * TILE, 3), alpha_img.view(th * TILE, -1)
    image, alpha_img = image[:height, :width], alpha_img[:height, :width]
    if bg is not None:
        image = image + (1 - alpha_img)[..., None] * torch.as_tensor(bg).to(image)
    return image, alpha_img
