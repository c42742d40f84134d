"""Sample panel operators: new heads from the priors, re-roll one, interpolate two."""

import tempfile
from pathlib import Path

import bpy
import numpy as np
from bpy.props import IntProperty
from bpy.types import Operator

from ..core.engine.files import read_meshes
from ..core.errors import DPHMError
from ..dphm_blender import samples
from ..dphm_blender.jobs import EngineOperator, engine_for, work_dir


def _scratch(context) -> Path:
    """Beside the .blend when saved, else a temporary folder (meshes land in the .blend)."""
    if bpy.data.filepath:
        return work_dir(context)
    return Path(tempfile.mkdtemp(prefix="dphm-samples-"))


class DPHM_OT_sample_heads(EngineOperator, Operator):
    """Sample identities (and expressions on each) from the diffusion priors, laid out in a
    grid of new objects"""

    bl_idname = "dphm.sample_heads"
    bl_label = "Sample heads"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return getattr(context.scene, "dphm", None) is not None

    def first_job(self, context):
        s = context.scene.dphm
        self._seed = s.sample_seed
        return engine_for(context).submit(
            "sample",
            out=str(_scratch(context) / f"samples_s{s.sample_seed}.npz"),
            identities=s.sample_identities,
            expressions=s.sample_expressions,
            seed=s.sample_seed,
            steps=s.sample_steps,
            resolution=s.sample_resolution,
        )

    def next_job(self, context, job):
        meshes, extra = read_meshes(job.result["path"])
        made = samples.grid(
            context.scene, meshes, extra, context.scene.dphm.sample_spacing, self._seed
        )
        self.report({"INFO"}, f"DPHM: {len(made)} heads sampled (seed {self._seed})")
        return None


class DPHM_OT_reroll_head(EngineOperator, Operator):
    """Replace the active sampled head by a new sample (same expression code, if any)"""

    bl_idname = "dphm.reroll_head"
    bl_label = "Re-roll"
    bl_options = {"REGISTER", "UNDO"}

    seed: IntProperty(name="Seed", description="0: a random seed", default=0, min=0)

    @classmethod
    def poll(cls, context):
        if samples.codes(context.active_object) is None:
            cls.poll_message_set("Make a sampled head the active object")
            return False
        return True

    def first_job(self, context):
        s = context.scene.dphm
        self._obj = context.active_object
        seed = self.seed or int(np.random.default_rng().integers(1, 2**31 - 1))
        self._seed = seed
        return engine_for(context).submit(
            "sample",
            out=str(_scratch(context) / "reroll.npz"),
            identities=1,
            expressions=0,
            seed=seed,
            steps=s.sample_steps,
            resolution=s.sample_resolution,
        )

    def next_job(self, context, job):
        _, z_exp = samples.codes(self._obj)
        if z_exp is not None and job.cmd == "sample":  # keep the expression: decode with it
            _, extra = read_meshes(job.result["path"])
            head = {"z_id": extra["z_id"][0].tolist(), "z_exp": z_exp.tolist()}
            return engine_for(context).submit(
                "decode",
                out=job.result["path"],
                heads=[head],
                resolution=context.scene.dphm.sample_resolution,
            )
        [(v, f)], extra = read_meshes(job.result["path"])
        samples.replace_mesh(self._obj, v, f)
        self._obj["dphm_z_id"] = [float(x) for x in extra["z_id"][0]]
        self.report({"INFO"}, f"DPHM: {self._obj.name} re-rolled (seed {self._seed})")
        return None


class DPHM_OT_interpolate_heads(EngineOperator, Operator):
    """Heads in between the two selected sampled heads (their codes mixed linearly)"""

    bl_idname = "dphm.interpolate_heads"
    bl_label = "Interpolate"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        picked = [o for o in context.selected_objects if samples.codes(o) is not None]
        if len(picked) != 2:
            cls.poll_message_set("Select exactly two sampled heads")
            return False
        return True

    def first_job(self, context):
        a, b = [o for o in context.selected_objects if samples.codes(o) is not None]
        if context.active_object is a:
            a, b = b, a
        self._ends = a, b
        (ia, ea), (ib, eb) = samples.codes(a), samples.codes(b)
        if (ea is None) != (eb is None):
            raise DPHMError(f"{a.name} and {b.name}: one has an expression, the other not")
        n = context.scene.dphm.interpolation_steps
        self._ts = np.linspace(0.0, 1.0, n + 2)[1:-1]
        heads = [
            {
                "z_id": ((1 - t) * ia + t * ib).tolist(),
                "z_exp": None if ea is None else ((1 - t) * ea + t * eb).tolist(),
            }
            for t in self._ts
        ]
        return engine_for(context).submit(
            "decode",
            out=str(_scratch(context) / "interpolated.npz"),
            heads=heads,
            resolution=context.scene.dphm.sample_resolution,
        )

    def next_job(self, context, job):
        a, b = self._ends
        meshes, extra = read_meshes(job.result["path"])
        coll = samples.collection(context.scene)
        for k, ((v, f), t) in enumerate(zip(meshes, self._ts, strict=True)):
            loc = a.location.lerp(b.location, float(t))
            loc.y -= context.scene.dphm.sample_spacing
            z_exp = extra["z_exp"][k] if extra["has_exp"][k] else None
            samples.head_object(
                f"DPHM {a.name} -> {b.name} {t:.2f}", v, f, extra["z_id"][k], z_exp, coll, loc
            )
        self.report({"INFO"}, f"DPHM: {len(meshes)} heads between {a.name} and {b.name}")
        return None


CLASSES = (DPHM_OT_sample_heads, DPHM_OT_reroll_head, DPHM_OT_interpolate_heads)
