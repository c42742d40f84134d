"""Matching a character's shape-key names to Apple's 52 ARKit names.

Names match case-insensitively, ignoring separators, with the side written any common way
(``eyeBlinkLeft``, ``eyeBlink_L``, ``EyeBlink.L``, ``eyeBlinkL``, ``eyeBlink_left``) and
behind any prefix that ends in a separator (``blendShape1.eyeBlinkLeft``,
``ARKit_jawOpen``). An exact name wins over a variant; among variants, the first key.
"""

import re

import numpy as np

from ..data.arkit import ARKIT_NAMES

_SEPARATORS = re.compile(r"[\s._:|/\-]+")
_SIDE_TOKEN = {"l": "left", "left": "left", "r": "right", "right": "right"}
_CAMEL_SIDE = re.compile(r"(?<=[a-z0-9])(Left|Right|L|R)$")


def _forms(name: str) -> list[str]:
    """Normalised forms of a key name, longest prefix first ("" for none)."""
    tokens = [t for t in _SEPARATORS.split(name.strip()) if t]
    if not tokens:
        return []
    side = ""
    if len(tokens) > 1 and tokens[-1].lower() in _SIDE_TOKEN:
        side = _SIDE_TOKEN[tokens.pop().lower()]
    else:
        camel = _CAMEL_SIDE.search(tokens[-1])
        if camel:
            side = _SIDE_TOKEN[camel.group(1).lower()]
            tokens[-1] = tokens[-1][: camel.start()]
    return ["".join(tokens[i:]).lower() + side for i in range(len(tokens))]


_ARKIT = {name.lower(): name for name in ARKIT_NAMES}


def match_arkit_keys(names) -> tuple[dict, list]:
    """(mapping ARKit name -> key name, ARKit names with no key, in Apple's order)."""
    names = [str(n) for n in names]
    mapping = {}
    for rank in (0, 1, 2):  # exact, same letters, variant
        for key in names:
            if rank == 0:
                found = key if key in ARKIT_NAMES else None
            elif rank == 1:
                found = _ARKIT.get(key.lower())
            else:
                found = next((_ARKIT[f] for f in _forms(key) if f in _ARKIT), None)
            if found and found not in mapping and key not in mapping.values():
                mapping[found] = key
    missing = [n for n in ARKIT_NAMES if n not in mapping]
    return {n: mapping[n] for n in ARKIT_NAMES if n in mapping}, missing


def key_tracks(weights, mapping: dict) -> dict:
    """Per matched key, its (T,) float32 weights from ARKit weights (T, 52) in Apple's order."""
    weights = np.asarray(weights, np.float32)
    return {key: weights[:, ARKIT_NAMES.index(name)] for name, key in mapping.items()}
