"""The engine process: the core's heavy work, run apart from Blender (see ``protocol``)."""
