"""The bpy side of DPHM: preferences, scene settings, writers, engine bridge, jobs.

``register()`` and ``unregister()`` are safe to call twice and in any order; the root
``__init__`` calls them when Blender enables or disables the extension.
"""


def _classes():
    from ..operators import bake, capture, sample, track, transfer
    from ..operators import setup as setup_ops
    from ..ui_panels import panels
    from . import preferences, props

    return (
        *preferences.CLASSES,
        *props.CLASSES,
        *setup_ops.CLASSES,
        *capture.CLASSES,
        *track.CLASSES,
        *bake.CLASSES,
        *sample.CLASSES,
        *transfer.CLASSES,
        *panels.CLASSES,
    )


def register():
    import bpy

    from . import capture_view, props

    for cls in _classes():
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)
        bpy.utils.register_class(cls)
    props.register()
    capture_view.register()


def unregister():
    import bpy

    from . import capture_view, engine, engine_check, engine_setup, props

    engine_check.checks.cancel()
    engine_setup.setups.cancel()
    engine.shutdown()
    capture_view.unregister()
    props.unregister()
    for cls in reversed(_classes()):
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)
