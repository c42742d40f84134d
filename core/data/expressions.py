"""A seeded prior over ICT-FaceKit expression weights that looks like real performances.

A sample is a sum of a few facial *actions* (smile, blink, jaw open, pucker, brow raise...),
each a group of co-activated blendshapes with fixed relative strengths, so that e.g. a smile
brings cheekSquint and a little eyeSquint with it. The number of actions is small (sparse
activations); each is symmetric with probability 0.7, otherwise its two sides get different
strengths (asymmetric). jawOpen covers its full range; blinks are frequent and often full.
A light sprinkle of single shapes adds variety. Weights are clipped to [0, 1].
"""

import numpy as np

# action -> [(ICT shape without side suffix, relative strength, sided)]
ACTIONS: dict[str, list[tuple[str, float, bool]]] = {
    "smile": [
        ("mouthSmile", 1.0, True),
        ("cheekSquint", 0.6, True),
        ("eyeSquint", 0.3, True),
        ("cheekRaiser", 0.5, True),
    ],
    "blink": [("eyeBlink", 1.0, True)],
    "jaw_open": [("jawOpen", 1.0, False), ("mouthLowerDown", 0.3, True)],
    "jaw_open_lips_closed": [("jawOpen", 0.5, False), ("mouthClose", 0.5, False)],
    "pucker": [("mouthPucker", 1.0, False), ("mouthFunnel", 0.3, False)],
    "funnel": [("mouthFunnel", 1.0, False), ("jawOpen", 0.2, False)],
    "frown": [("mouthFrown", 1.0, True), ("browDown", 0.5, True), ("mouthShrugLower", 0.3, False)],
    "brow_raise": [("browInnerUp", 1.0, True), ("browOuterUp", 0.8, True)],
    "surprise": [
        ("browInnerUp", 0.8, True),
        ("browOuterUp", 0.8, True),
        ("eyeWide", 0.8, True),
        ("jawOpen", 0.4, False),
    ],
    "anger": [("browDown", 1.0, True), ("noseSneer", 0.5, True), ("mouthPress", 0.5, True)],
    "sneer": [("noseSneer", 1.0, True), ("mouthUpperUp", 0.6, True)],
    "press": [("mouthPress", 1.0, True), ("mouthRollLower", 0.3, False)],
    "roll": [("mouthRollLower", 1.0, False), ("mouthRollUpper", 0.8, False)],
    "jaw_side_left": [("jawLeft", 1.0, False), ("mouthLeft", 0.4, False)],
    "jaw_side_right": [("jawRight", 1.0, False), ("mouthRight", 0.4, False)],
    "mouth_left": [("mouthLeft", 1.0, False)],
    "mouth_right": [("mouthRight", 1.0, False)],
    "jaw_forward": [("jawForward", 1.0, False)],
    "puff": [("cheekPuff", 1.0, True), ("mouthClose", 0.2, False)],
    "stretch": [("mouthStretch", 1.0, True), ("jawOpen", 0.15, False)],
    "dimple": [("mouthDimple", 1.0, True)],
    "shrug": [("mouthShrugLower", 1.0, False), ("mouthShrugUpper", 0.6, False)],
    "upper_up": [("mouthUpperUp", 1.0, True)],
    "lower_down": [("mouthLowerDown", 1.0, True)],
    "squint": [("eyeSquint", 1.0, True), ("cheekSquint", 0.3, True)],
    "look_up": [("eyeLookUp", 1.0, True)],
    "look_down": [("eyeLookDown", 1.0, True)],
    "look_left": [("eyeLookOut_L", 1.0, False), ("eyeLookIn_R", 1.0, False)],
    "look_right": [("eyeLookIn_L", 1.0, False), ("eyeLookOut_R", 1.0, False)],
}

# relative frequency of each action in a sample
FREQUENCY = {
    "smile": 3.0,
    "blink": 3.0,
    "jaw_open": 3.0,
    "brow_raise": 1.5,
    "pucker": 1.0,
    "funnel": 1.0,
    "frown": 1.0,
    "surprise": 1.0,
    "sneer": 0.7,
}


def expression_from_actions(names, actions: dict[str, tuple[float, float]]) -> np.ndarray:
    """ICT weights from {action: (left strength, right strength)}."""
    index = {n: i for i, n in enumerate(names)}
    w = np.zeros(len(names), np.float32)
    for action, (left, right) in actions.items():
        for shape, gain, sided in ACTIONS[action]:
            if sided:
                for suffix, s in (("_L", left), ("_R", right)):
                    if shape + suffix in index:
                        w[index[shape + suffix]] += gain * s
            elif shape in index:
                w[index[shape]] += gain * 0.5 * (left + right)
    return np.clip(w, 0.0, 1.0)


def sample_expressions(names, n: int, seed: int) -> np.ndarray:
    """(n, E) ICT expression weights from the prior; row 0 of nothing is never forced."""
    rng = np.random.default_rng(seed)
    acts = list(ACTIONS)
    p = np.array([FREQUENCY.get(a, 0.5) for a in acts])
    p /= p.sum()
    out = np.zeros((n, len(names)), np.float32)
    for i in range(n):
        k = min(rng.poisson(1.3) + 1, 4)
        chosen = rng.choice(len(acts), size=k, replace=False, p=p)
        spec = {}
        for a in chosen:
            strength = rng.beta(1.5, 1.2) if acts[a] != "blink" else rng.choice([1.0, rng.random()])
            if acts[a] == "jaw_open":
                strength = rng.random()  # the full jaw range
            if rng.random() < 0.7:
                spec[acts[a]] = (strength, strength)
            else:
                spec[acts[a]] = tuple(strength * rng.uniform(0.0, 1.0, 2))
        w = expression_from_actions(names, spec)
        sprinkle = rng.random(len(names)) < 0.03
        w[sprinkle] += rng.uniform(0.0, 0.3, sprinkle.sum())
        out[i] = np.clip(w, 0.0, 1.0)
    return out
