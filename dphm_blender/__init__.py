"""The bpy side of DPHM: preferences, writers, engine bridge.

``register()`` and ``unregister()`` are safe to call twice and in any order; the root
``__init__`` calls them when Blender enables or disables the extension.
"""


def _classes():
    from ..operators import setup as setup_ops
    from . import preferences

    return (*preferences.CLASSES, *setup_ops.CLASSES)


def register():
    import bpy

    for cls in _classes():
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)
        bpy.utils.register_class(cls)


def unregister():
    import bpy

    from . import engine_check

    engine_check.cancel_current()
    for cls in reversed(_classes()):
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)
