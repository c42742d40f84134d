"""Azure Kinect depth noise, applied to a clean rendered depth image.

The model (all lengths in metres, theta the angle between viewing ray and surface normal):

- axial noise, Gaussian, sigma(z, theta) = 0.6 mm + 1.9 mm (z - 0.4)^2
  + 0.1 mm / sqrt(z) * theta^2 / (pi/2 - theta)^2. The form is Nguyen, Izadi and Lovell's
  characterisation of Kinect depth noise (3DIMPVT 2012: quadratic growth with distance,
  incidence term that explodes towards grazing angles); the distance term is lowered to the
  sub-millimetre-to-millimetre precision that Toelgyessy et al. (Sensors 21:413, 2021) measured
  for the Azure Kinect's time-of-flight depth at short range.
- invalid pixels where theta > 80 degrees (too little light returns) and on most pixels of
  a depth edge (a jump > 2 cm inside the 3x3 neighbourhood), as the Azure Kinect's depth
  engine rejects mixed signals there;
- flying pixels: some silhouette and edge pixels survive with a depth between the
  foreground and what lies behind (time-of-flight mixing), the effect Toelgyessy et al.
  document at object borders;
- optional random dropout of a fraction of pixels;
- 1 mm quantisation (the sensor reports integer millimetres).

Other cameras (``profiles``) swap in their own distance term, working range and, for
structured light, quantisation in disparity steps; the incidence, edge and flying-pixel
terms are kept for all.
"""

import numpy as np

GRAZING = np.deg2rad(80.0)
EDGE_JUMP = 0.02
EDGE_INVALID = 0.6
FLYING = 0.25


AZURE_SIGMA = (0.0006, 0.0019, 0.4)


def axial_sigma(z: np.ndarray, theta: np.ndarray, sigma=AZURE_SIGMA) -> np.ndarray:
    theta = np.minimum(theta, GRAZING)
    a0, a2, z0 = sigma
    return a0 + a2 * (z - z0) ** 2 + 0.0001 / np.sqrt(z) * theta**2 / (np.pi / 2 - theta) ** 2


def _neighbourhood(depth: np.ndarray):
    """3x3 max, min and min over valid pixels (inf where none) of a depth image."""
    H, W = depth.shape
    pad = np.pad(depth, 1)
    pad_valid = np.where(pad > 0, pad, np.inf)
    hi, lo0, lo = np.zeros_like(depth), depth.copy(), np.full_like(depth, np.inf)
    for dv in range(3):
        for du in range(3):
            win = (slice(dv, dv + H), slice(du, du + W))
            np.maximum(hi, pad[win], out=hi)
            np.minimum(lo0, pad[win], out=lo0)
            np.minimum(lo, pad_valid[win], out=lo)
    return hi, lo0, lo


def kinect_noise(
    depth: np.ndarray,
    cos_theta: np.ndarray,
    rng: np.random.Generator,
    dropout: float = 0.0,
    scale: float = 1.0,
    profile=None,
) -> np.ndarray:
    """Noisy depth (float32 metres, whole millimetres) from clean ``depth`` and ``cos_theta``.

    ``scale`` multiplies the axial noise (for robustness sweeps); ``profile`` (a
    ``profiles.CameraProfile``, default the Azure Kinect) gives the camera's noise and range.
    """
    out = np.zeros(depth.shape, np.float32)
    rows, cols = np.nonzero((depth > 0).any(1))[0], np.nonzero((depth > 0).any(0))[0]
    if rows.size:  # work on the bounding box of the valid pixels (plus a margin)
        box = (slice(max(rows[0] - 2, 0), rows[-1] + 3), slice(max(cols[0] - 2, 0), cols[-1] + 3))
        out[box] = _noise(depth[box], cos_theta[box], rng, dropout, scale, profile)
    return out


def _noise(depth, cos_theta, rng, dropout, scale, profile):
    valid = depth > 0
    out = np.zeros(depth.shape, np.float32)
    z = depth[valid].astype(np.float64)
    theta = np.arccos(np.clip(cos_theta[valid], 0.0, 1.0))
    sigma = AZURE_SIGMA if profile is None else profile.sigma
    noisy = z + scale * axial_sigma(z, theta, sigma) * rng.standard_normal(z.size)
    keep = theta <= GRAZING
    if dropout > 0:
        keep &= rng.random(z.size) >= dropout
    out[valid] = np.where(keep, noisy, 0.0)
    hi, lo0, lo = _neighbourhood(depth)
    edge = valid & (hi - lo > EDGE_JUMP)  # both sides of a depth jump inside the image
    border = edge | (valid & (lo0 == 0))  # ... and silhouettes against nothing
    idx = np.nonzero(border.ravel())[0]
    u = rng.random(idx.size)
    flat = out.ravel()
    fly = idx[(u >= 1 - FLYING) & (flat[idx] > 0)]  # only pixels that returned light
    flat[idx[u < EDGE_INVALID]] = 0
    gap = (hi.ravel()[fly] - depth.ravel()[fly]) + rng.exponential(0.015, fly.size)
    flat[fly] = depth.ravel()[fly] + rng.random(fly.size) * gap
    if profile is not None:
        lo_z, hi_z = profile.range
        out[(out < lo_z) | (out > hi_z)] = 0  # outside the working range: no reading
        if profile.disparity_step:  # structured light: whole steps of inverse depth
            k = profile.disparity_step
            hit = out > 0
            out[hit] = 1.0 / (np.round(1.0 / (out[hit] * k)) * k)
    return np.round(out * 1000).astype(np.float32) / np.float32(1000)
