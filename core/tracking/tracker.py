"""The tracker: identity on keyframes, then per frame expression and pose, then windows.

``Tracker.results(observations)`` is a generator of ``FrameResult`` (the live path: it
buffers the first keyframes, fits the identity, then yields frame by frame);
``track(source, ...)`` is the offline path: keyframes spread over the take, per-frame
fitting warm started from a constant-velocity prediction (refined by the amortised encoder
when one is shipped: ``encoder.py``), a joint pass over windows, and the take's arrays.
Frames without a head are flagged (``found`` False, NaN error) and carry the last good
state. ``timings`` holds seconds per stage.

Where frames carry colour and MediaPipe and the shipped landmark model are installed
(``face_landmarks.py``), each head's face landmarks start its rigid search (their pose,
refined by ICP), enter the fit as a landmark term aimed at the performer's own places for
them (read on the identity's keyframes), and give the eyelid ARKit weights, which depth
barely sees, and half of the brow and smile weights. Without them tracking runs on depth
only and says so once.
"""

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..capture.warn import warn
from ..errors import DPHMError
from . import face_landmarks, rigid
from .arkit_map import ArkitMap
from .encoder import load_encoder_for
from .fit import CodePrior, State, fit_errors, fit_frames
from .preprocess import segment_head

HEAD_RESIDUAL_MM = 4.5  # rigid fit median residual above which a blob is not a head
LOST_MM = 4.0  # fit error above which the next frame restarts from the rigid search
VELOCITY = 0.5  # share of the last frame's motion that the next frame's start continues
FIRST_STEPS = 3  # a frame started from the rigid search gets this many times the steps
MAX_GAP_S = 0.5  # frames further apart than this share no pose: the next one starts afresh
REFINE_POINTS = 240_000  # canonical points the identity refinement is fitted to, at most


@dataclass
class FrameResult:
    index: int
    timestamp: float
    state: State | None
    fit_error_mm: float
    found: bool
    reason: str = ""
    arkit: np.ndarray | None = None


def load_prior_for(content, required=False):
    """The diffusion priors trained for this head model (``paths.companion``: prior.pt for
    head_model.pt, prior_triplane.pt for head_model_triplane.pt), or None when there are
    none or they belong to another head, unless ``required``."""
    from ..model import checkpoint
    from ..paths import companion
    from ..prior.regularizer import PriorRegularizer

    path = companion(content.get("path"), "prior.pt")
    if not required and not path.is_file():
        return None
    if not required and checkpoint.load(path, "prior").get("head_sha256") != content["sha256"]:
        return None
    return PriorRegularizer.load(path, head_sha256=content["sha256"])


class Tracker:
    """``encoder``: an ``encoder.Encoder`` whose guess starts every frame (the optimiser then
    runs ``preset.encoder_steps`` instead of ``preset.steps``), None for none, or "auto" for
    the one shipped for this head model when there is one. ``face``: a
    ``face_landmarks.FaceModel`` for frames with colour, None for depth only, or "auto"
    for the shipped one when MediaPipe is installed."""

    def __init__(
        self, model, content, preset, prior=None, seed=0, encoder="auto", face="auto"
    ):
        self.model, self.content, self.preset, self.seed = model, content, preset, seed
        self.prior = CodePrior(content, preset, prior)
        self.encoder = load_encoder_for(content) if encoder == "auto" else encoder
        self.arkit = ArkitMap.from_content(content)
        self.face = face_landmarks.FaceModel.load(rigid.SCALE) if face == "auto" else face
        self.face_targets = None  # (478, 3) this performer's canonical landmark places
        self.face_off = ""  # why the colour stream is not used (said once)
        self.face_frames = 0  # frames whose colour gave face landmarks
        self.neutral = content["codebooks"]["exp"][0].numpy()
        self.timings = defaultdict(float)
        self.z_id = self.cond_id = None  # cond_id: the model's conditioning of z_id
        self.history: list[State] = []
        self.lost = True
        self.last_time = 0.0
        self.last_arkit = None
        self.refinement = None  # the take's correction of the identity (``refine_identity``)
        self.cache = None  # the fixed identity's canonical SDF (``cache_identity``)
        with self.timed("template"):
            self.template = rigid.mean_head(model, content["codebooks"]["id"].mean(0))

    @contextmanager
    def timed(self, stage):
        t0 = time.perf_counter()
        yield
        self.timings[stage] += time.perf_counter() - t0

    def observe(self, frame):
        with self.timed("preprocess"):
            obs = segment_head(frame, max_points=4 * self.preset.n_points, seed=frame.index,
                               beside=self.preset.refine_identity)  # fmt: skip
        return self.landmarks(frame, obs)

    def landmarks(self, frame, obs):
        """``obs`` with the face landmarks of its head, where the frame's colour has them."""
        if self.face is None or not obs.found:
            return obs
        problem = face_landmarks.color_problem(frame)
        if problem:
            if problem != self.face_off:
                warn(f"colour landmarks: off, {problem}; tracking runs on depth only")
            self.face_off = problem
            return obs
        last = self.history[-1].R if self.history and not self.lost else None
        with self.timed("landmarks"):
            obs.face = self.face.landmarker.observe(frame, obs.points, last)
        self.face_frames += obs.face is not None
        return obs

    def rigid_init(self, obs) -> State | None:
        """A start from the face landmarks' pose when that fits the points, else from the
        search over orientations."""
        with self.timed("rigid"):
            res = np.inf
            if obs.face is not None:
                R, t = self.face.start_pose(obs.face)
                R, t, res = rigid.icp(obs.points, self.template, R, t, iters=15)
            if res * 1000 > HEAD_RESIDUAL_MM:
                R, t, res = rigid.initial_pose(obs.points, self.template, seed=obs.index)
        if res * 1000 > HEAD_RESIDUAL_MM:
            return None
        z = self.history[-1].z_exp if self.history else self.neutral
        return self.encode(obs, State(z.copy(), R, t))

    def encode(self, obs, guess: State) -> State:
        """The encoder's state for an observation from a pose guess (the guess without one);
        its anchor landmarks, when it has them, are attached to the observation."""
        if self.encoder is None:
            return guess
        with self.timed("encoder"):
            p = self.encoder.predict([obs], [(guess.R, guess.t)], seed=self.seed)[0]
        if self.encoder.n_landmarks:
            obs.landmarks, obs.landmark_spread = p["landmarks"], p["landmark_spread"]
        return State(p["z_exp"], p["R"], p["t"])

    def _start(self, obs) -> State:
        """A frame's starting state: the encoder's guess from the prediction, or the
        prediction itself (or its pose with the encoder's expression) when that fits the
        frame's points better: a coarse expression guess can start a fit in a worse valley
        than the last frame's code, and the reverse after a quick change."""
        pred = self._prediction()
        if self.encoder is None:
            return pred
        guess = self.encode(obs, pred)
        cands = [guess, pred, State(guess.z_exp, pred.R, pred.t)]
        n = self.preset.n_select or self.preset.n_points
        with self.timed("fit"):
            errs = fit_errors(self.model, self.z_id, obs, cands, n, self.seed + obs.index,
                              self.cond_id, self.cache)  # fmt: skip
        return cands[int(np.argmin(errs))]

    def fit_identity(self, observations) -> list:
        """Fit the identity code on keyframes; returns the observations that were heads.
        Keyframes are spread over the take, not neighbours in time: no smoothness terms."""
        inits = [(o, self.rigid_init(o)) for o in observations]
        inits = [(o, s) for o, s in inits if s is not None]
        if not inits:
            return []
        z_id = self.content["codebooks"]["id"].mean(0).numpy()
        with self.timed("identity"):
            self.z_id, states, _, _ = fit_frames(
                self.model,
                z_id,
                [o for o, _ in inits],
                [s for _, s in inits],
                self.preset.but(w_smooth_exp=0.0, w_smooth_rot=0.0, w_smooth_trans=0.0),
                self.prior,
                self.preset.id_steps,
                fit_identity=True,
                seed=self.seed,
            )
            with torch.no_grad():
                self.cond_id = self.model.identity.condition(torch.as_tensor(self.z_id)[None])
        self.cache_identity()
        if any(o.face is not None for o, _ in inits):
            with self.timed("landmarks"):
                self.face_targets = self.face.targets(
                    self.model, self.z_id, [o.face for o, _ in inits], states
                )
        return [o for o, _ in inits]

    def cache_identity(self):
        """Serve the fixed identity's canonical SDF, with its refinement, from a cache
        (``model.sdf_cache``) when the preset says so; timed as ``cache``."""
        from ..model.sdf_cache import CachedSDF

        if self.preset.cache:
            with self.timed("cache"):
                fn = self.model.sdf_fn(self.z_id, refinement=self.refinement)
                self.cache = CachedSDF.build(fn)

    def _prediction(self) -> State:
        """The last state moved on by half its last motion (a damped constant velocity)."""
        last = self.history[-1]
        if len(self.history) < 2:
            return last
        prev = self.history[-2]
        w = Rotation.from_matrix(last.R @ prev.R.T).as_rotvec()
        return State(
            last.z_exp,
            Rotation.from_rotvec(VELOCITY * w).as_matrix() @ last.R,
            last.t + VELOCITY * (last.t - prev.t),
        )

    def step(self, obs) -> FrameResult:
        """Fit one frame from the previous state (or from the rigid search when lost)."""
        if not obs.found:
            return self._flagged(obs, obs.reason)
        steps = self.preset.encoder_steps if self.encoder else self.preset.steps
        if self.history and abs(obs.timestamp - self.last_time) > MAX_GAP_S:
            self.lost = True  # a head turns a long way in half a second: no prediction
        self.last_time = obs.timestamp
        if self.lost or not self.history:
            init, before, steps = self.rigid_init(obs), None, FIRST_STEPS * steps
            if init is None:
                return self._flagged(obs, "blob does not fit a head")
        else:
            init, before = self._start(obs), self.history[-1]
        if obs.face is not None and self.face_targets is not None:
            pts, idx, sigma = self.face.fit_landmarks(obs.face)
            obs.face_fit = (pts, self.face_targets[idx], sigma)
        with self.timed("fit"):
            _, (state,), (err,), _ = fit_frames(
                self.model,
                self.z_id,
                [obs],
                [init],
                self.preset,
                self.prior,
                steps,
                before=before,
                seed=self.seed + obs.index,
                cond_id=self.cond_id,
                cache=self.cache,
            )
        self.lost = err > LOST_MM
        self.history = [*self.history[-1:], state]
        self.last_arkit = self._arkit(state, obs)
        return FrameResult(obs.index, obs.timestamp, state, err, True, "", self.last_arkit)

    def _arkit(self, state, obs) -> np.ndarray:
        """The 52 ARKit weights: the expression code's map, with the eyelid, brow and smile
        weights read from the colour landmarks where the frame has them (``FaceModel.arkit``)."""
        with self.timed("arkit"):
            w = self.arkit(state.z_exp)[0]
            return w if obs.face is None else self.face.arkit(obs.face, w)

    def _flagged(self, obs, reason) -> FrameResult:
        last = self.history[-1] if self.history else None
        self.lost = True
        return FrameResult(
            obs.index, obs.timestamp, last, float("nan"), False, reason, self.last_arkit
        )

    def results(self, observations):
        """FrameResults for a stream of observations (fits the identity on the first
        ``preset.keyframes`` heads unless it is already known)."""
        pending = []
        for obs in observations:
            if self.z_id is not None:
                yield self.step(obs)
                continue
            pending.append(obs)
            if sum(o.found for o in pending) >= self.preset.keyframes:
                if self.fit_identity([o for o in pending if o.found]):
                    yield from (self.step(o) for o in pending)
                    pending = []
                else:
                    yield from (self._flagged(o, o.reason or "no head") for o in pending)
                    pending = []
        if pending and self.fit_identity([o for o in pending if o.found]):
            yield from (self.step(o) for o in pending)
        else:
            yield from (self._flagged(o, o.reason or "no head") for o in pending)

    def refine(self, results, observations, stage="refine"):
        """Joint pass over windows of consecutive tracked frames (in place), on the refined
        head once ``refine_identity`` has run; timed as ``stage``."""
        w = self.preset.window
        if not w or not self.preset.window_steps:
            return
        by_index = {o.index: o for o in observations}
        ok = [i for i, r in enumerate(results) if r.found]
        for k in range(0, len(ok), w):
            sel = ok[k : k + w]
            before = results[sel[0] - 1].state if sel[0] > 0 and results[sel[0] - 1].found else None
            nxt = sel[-1] + 1
            after = results[nxt].state if nxt < len(results) and results[nxt].found else None
            with self.timed(stage):
                _, states, errs, _ = fit_frames(
                    self.model,
                    self.z_id,
                    [by_index[results[i].index] for i in sel],
                    [results[i].state for i in sel],
                    self.preset.but(early_stop_mm=0.0),
                    self.prior,
                    self.preset.window_steps,
                    before=before,
                    after=after,
                    seed=self.seed + k,
                    cond_id=self.cond_id,
                    refinement=self.refinement,
                    cache=self.cache,
                )
            for i, s, e in zip(sel, states, errs, strict=True):
                results[i].state, results[i].fit_error_mm = s, e
                results[i].arkit = self._arkit(s, by_index[results[i].index])

    def refine_identity(self, results, observations):
        """Fit ``self.refinement`` to every tracked frame's points: through the frame's pose
        and the backward deformation into canonical space (``model.refinement``)."""
        from ..model.refinement import fit_refinement

        by_index = {o.index: o for o in observations}
        used = [(r, by_index[r.index]) for r in results
                if r.found and r.index in by_index and by_index[r.index].found]  # fmt: skip
        each = -(-REFINE_POINTS // max(1, len(used)))
        pts, res = [], []
        z_id = torch.as_tensor(self.z_id, dtype=torch.float32)[None]
        anchors = self.cond_id["anchors"]
        with self.timed("identity_refine"), torch.no_grad():
            for r, obs in used:
                s = r.state
                p = obs.points[:: -(-len(obs.points) // each)]
                if obs.beside is not None and len(obs.beside):
                    p = np.concatenate([p, obs.beside[: max(1, each // 4)]])
                x = (p - s.t) @ s.R / rigid.SCALE
                x = torch.as_tensor(x, dtype=torch.float32)
                z_exp = torch.as_tensor(s.z_exp, dtype=torch.float32)[None]
                cond = {"exp": self.model.expression.condition(z_exp, z_id, anchors)}
                x = x + self.model.deform(x, cond)
                pts.append(x.numpy())
                res.append(self.model.identity(x, self.cond_id).numpy())
            if pts:
                self.refinement = fit_refinement(np.concatenate(pts), np.concatenate(res))
        self.cache_identity()
        return self.refinement


def track(tracker: Tracker, frames, progress=None, name="the input"):
    """Offline tracking of an iterable of DepthFrames; returns (results, take arrays).
    ``name`` (the source's file) starts the message when no head is found.

    ``progress(0, frame)`` after each frame is read, ``progress(1, result)`` after each is
    tracked (the FrameResult, before the joint refinement)."""
    observations = []
    for f in frames:
        observations.append(tracker.observe(f))
        if progress:
            progress(0, f)
    heads = [o for o in observations if o.found]
    if not heads:
        reasons = sorted({o.reason for o in observations})
        raise DPHMError(
            f"{name}: no head in view in any of {len(observations)} frames ({'; '.join(reasons)})"
        )
    k = tracker.preset.keyframes
    keys = [heads[i] for i in np.unique(np.linspace(0, len(heads) - 1, k).round().astype(int))]
    if not tracker.fit_identity(keys):
        raise DPHMError(
            f"{name}: no head in view: the nearest blobs of {len(heads)} frames do not fit a head"
        )
    results = []
    for r in tracker.results(observations):
        results.append(r)
        if progress:
            progress(1, r)
    tracker.refine(results, observations)
    good = [r for r in results if r.found]
    if not good:
        raise DPHMError(f"{name}: no head in view: no frame of {len(results)} could be tracked")
    if tracker.preset.refine_identity:  # the windows again on the refined head, then again
        tracker.refine_identity(results, observations)
        tracker.refine(results, observations, stage="identity_refine")
        tracker.refine_identity(results, observations)
    return results, take_arrays(tracker, results)


def kept(observations, into, points=1000):
    """Pass a stream of observations on, keeping a light copy of each (``points`` of its
    points) in ``into`` for ``Tracker.refine_identity`` at the end of a live take."""
    from types import SimpleNamespace

    for o in observations:
        pts = o.points[:: -(-len(o.points) // points)] if o.found else None
        beside = o.beside[: points // 4] if o.found and o.beside is not None else None
        into.append(SimpleNamespace(index=o.index, found=o.found, points=pts, beside=beside))
        yield o


def take_arrays(tracker, results) -> dict:
    """The take's per-frame arrays; frames before the first good one take its state."""
    first = next(r for r in results if r.state is not None)
    states = [r.state or first.state for r in results]
    z_exp = np.stack([s.z_exp for s in states])
    arkit = [r.arkit if r.arkit is not None else first.arkit for r in results]
    return {
        "z_id": tracker.z_id,
        "z_exp": z_exp,
        "R": np.stack([s.R for s in states]),
        "t": np.stack([s.t for s in states]),
        "s": np.full(len(states), rigid.SCALE),
        "timestamps": np.array([r.timestamp for r in results]),
        "arkit": np.stack(arkit).astype(np.float32),
        "fit_error_mm": np.array([r.fit_error_mm for r in results]),
        "quality": tracker.preset.name,
        "model_sha256": tracker.content["sha256"],
        "refinement": tracker.refinement,
    }
