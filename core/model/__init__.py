"""The neural parametric head model (NPHM-style, backward deformation as in DPHMs).

Canonical head space is defined in ``core/data/corpus.py``: ICT's frame (x to the head's
left, y up, z out of the face), centred and divided by 0.2 m.
"""

FAMILIES = ("nphm", "triplane")  # identity SDF families (``ModelConfig.family``)
