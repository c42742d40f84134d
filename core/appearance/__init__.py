"""Appearance: Gaussian heads fitted to a take's colour frames, and colours for meshes."""
