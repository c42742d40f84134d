"""Scripts that run in a child Python with bpy (``python -m dphm.dphm_blender.scripts.X``).

The demo's scene, the export .blend / Alembic and the Blender benchmarks. They are never
imported by the add-on itself: each builds a scene in its own headless Blender process.
"""
