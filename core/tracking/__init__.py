"""Head tracking from depth: preprocessing, rigid initialisation, fitting, takes, export.

``preprocess``: head points and normals of a depth frame. ``rigid``: pose from a coarse
search plus ICP against the model's mean head. ``fit``: the joint optimiser of codes and
poses. ``tracker``: identity on keyframes, per-frame fitting, window refinement.
``presets``: preview / balanced / best. ``arkit_map``: expression code -> ARKit weights.
``take`` and ``export``: the take file and what it turns into. ``bench``: suite tracking.
"""
