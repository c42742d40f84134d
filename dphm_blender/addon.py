"""The add-on's identity inside Blender, and access to its preferences."""

import json

import bpy

# "bl_ext.<repo>.dphm" when Blender loads the extension, "dphm" when installed with pip.
ADDON_ID = __package__.rpartition(".")[0]


def preferences(context=None):
    """This add-on's AddonPreferences, or None while it is not enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def stored_setup_result(prefs) -> dict | None:
    """The last "Check setup" result kept in the preferences, or None."""
    if prefs is None or not prefs.setup_result:
        return None
    try:
        return json.loads(prefs.setup_result)
    except ValueError:
        return None
