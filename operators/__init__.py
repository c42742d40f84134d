"""Thin bpy operators: they call dphm_blender and core."""
