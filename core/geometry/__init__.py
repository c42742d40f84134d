"""Geometry: surface sampling, SDF meshing, mesh files and the project metrics."""
