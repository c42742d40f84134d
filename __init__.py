"""DPHM for Blender: depth camera to animated neural parametric head.

This file is both the Blender extension entry point and the top of the ``dphm`` Python
package, so it imports nothing heavy: bpy is only touched inside register().
"""


def register():
    from . import dphm_blender

    dphm_blender.register()


def unregister():
    from . import dphm_blender

    dphm_blender.unregister()
