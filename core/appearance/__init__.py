"""Appearance: Gaussian heads fitted to a take's colour frames, and colours for meshes."""

GAUSSIANS, ITERATIONS = 20_000, 1200  # defaults: a 60-frame take in under 10 minutes
