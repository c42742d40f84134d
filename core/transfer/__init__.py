"""Expression transfer and retargeting.

``heads``: a take's codes on another model identity. ``landmarks``: automatic or manual
landmarks and the similarity of a character mesh to canonical space. ``retarget``: a
take's expressions on a character's own vertices, and its ARKit-52 shape set.
``arkit_names``: matching ARKit shape-key names with their common variants.
``commands``: ``dphm transfer``.
"""
