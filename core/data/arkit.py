"""Apple's 52 ARKit blendshape names and the mapping to ICT-FaceKit's 57 expressions.

ICT writes left/right as ``_L``/``_R`` (the face's own left, as ARKit's ``Left``), splits
browInnerUp and cheekPuff into halves, adds PupilDilate_L/R and cheekRaiser_L/R, and has
no tongueOut. ARKit -> ICT copies a split shape's weight to both halves; ICT -> ARKit
averages them; the ICT-only shapes have no ARKit weight and tongueOut is always 0.
"""

import numpy as np

ARKIT_NAMES = (
    "eyeBlinkLeft",
    "eyeLookDownLeft",
    "eyeLookInLeft",
    "eyeLookOutLeft",
    "eyeLookUpLeft",
    "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight",
    "eyeLookDownRight",
    "eyeLookInRight",
    "eyeLookOutRight",
    "eyeLookUpRight",
    "eyeSquintRight",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawRight",
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthLeft",
    "mouthRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)
assert len(ARKIT_NAMES) == 52

# ICT-FaceKit's 57 expression names in its own order (the order of every ICT weight vector
# in this project, e.g. a checkpoint's exp_weights), for use without the ICT data.
ICT_EXPRESSION_NAMES = (
    "browDown_L",
    "browDown_R",
    "browInnerUp_L",
    "browInnerUp_R",
    "browOuterUp_L",
    "browOuterUp_R",
    "cheekPuff_L",
    "cheekPuff_R",
    "cheekSquint_L",
    "cheekSquint_R",
    "eyeBlink_L",
    "eyeBlink_R",
    "eyeLookDown_L",
    "eyeLookDown_R",
    "eyeLookIn_L",
    "eyeLookIn_R",
    "eyeLookOut_L",
    "eyeLookOut_R",
    "eyeLookUp_L",
    "eyeLookUp_R",
    "eyeSquint_L",
    "eyeSquint_R",
    "eyeWide_L",
    "eyeWide_R",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimple_L",
    "mouthDimple_R",
    "mouthFrown_L",
    "mouthFrown_R",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDown_L",
    "mouthLowerDown_R",
    "mouthPress_L",
    "mouthPress_R",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmile_L",
    "mouthSmile_R",
    "mouthStretch_L",
    "mouthStretch_R",
    "mouthUpperUp_L",
    "mouthUpperUp_R",
    "noseSneer_L",
    "noseSneer_R",
    "PupilDilate_L",
    "PupilDilate_R",
    "cheekRaiser_L",
    "cheekRaiser_R",
)
assert len(ICT_EXPRESSION_NAMES) == 57


def ict_name_to_arkit(name: str) -> str | None:
    """``mouthSmile_L`` -> ``mouthSmileLeft``; halves of split shapes map to the whole."""
    base, side = (name[:-2], name[-1]) if name[-2:] in ("_L", "_R") else (name, "")
    if base in ("browInnerUp", "cheekPuff"):
        return base
    full = base + {"L": "Left", "R": "Right", "": ""}[side]
    return full if full in ARKIT_NAMES else None


def ict_to_arkit_matrix(ict_names) -> np.ndarray:
    """(52, E) matrix M with arkit = M @ ict_weights."""
    m = np.zeros((52, len(ict_names)), np.float32)
    for j, name in enumerate(ict_names):
        a = ict_name_to_arkit(str(name))
        if a is not None:
            m[ARKIT_NAMES.index(a), j] = 1.0
    counts = m.sum(1, keepdims=True)
    return m / np.maximum(counts, 1.0)


def arkit_to_ict_matrix(ict_names) -> np.ndarray:
    """(E, 52) matrix with ict_weights = M @ arkit (split shapes get the whole weight)."""
    return (ict_to_arkit_matrix(ict_names) > 0).astype(np.float32).T
