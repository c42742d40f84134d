"""Bake panel operators: a take as shape keys, ARKit keys, a PC2 mesh cache or Alembic;
its appearance (Gaussians fitted to the colour frames) for the bakes' colours."""

from bpy.props import EnumProperty
from bpy.types import Operator

from ..core.tracking.arkit_calibration import smoothed
from ..core.tracking.bake import read_bake
from ..dphm_blender import bake as writers
from ..dphm_blender.jobs import (
    EngineOperator,
    absolute,
    engine_for,
    relative,
    scene_take,
    take_file,
    work_dir,
)

KINDS = (
    ("SHAPE_KEYS", "Shape keys", "One shape key per frame on a fixed-topology head"),
    ("ARKIT", "ARKit-52 keys", "The 52 ARKit shapes as shape keys, keyed with the take's weights"),
    ("MESH_CACHE", "Mesh cache (PC2)", "A .pc2 point cache beside the .blend, Mesh Cache modifier"),
    ("ALEMBIC", "Alembic", "Per-frame meshes (varying topology) in an .abc, Mesh Sequence Cache"),
)


class DPHM_OT_bake(EngineOperator, Operator):
    """Bake the scene's take into Blender geometry"""

    bl_idname = "dphm.bake"
    bl_label = "Bake"
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(name="As", items=KINDS, default="SHAPE_KEYS")

    @classmethod
    def poll(cls, context):
        return scene_take(cls, context) is not None

    @classmethod
    def description(cls, context, props):
        return dict((k, d) for k, _, d in KINDS)[props.kind]

    def first_job(self, context):
        s = context.scene.dphm
        take = take_file(s)
        folder = work_dir(context)
        self._take = take
        meshes = folder / f"{take.stem}.meshes_r{s.alembic_resolution}.npz"
        return engine_for(context).submit(
            "bake",
            take=str(take),
            out=str(folder / f"{take.stem}.bake_r{s.resolution}.npz"),
            resolution=s.resolution,
            arkit_shapes=self.kind == "ARKIT",
            meshes=str(meshes) if self.kind == "ALEMBIC" else None,
            meshes_resolution=s.alembic_resolution,
            appearance=str(absolute(s.appearance)) if s.appearance else None,
        )

    def next_job(self, context, job):
        from ..core.engine.files import read_meshes

        s = context.scene.dphm
        data = read_bake(job.result["bake"])
        data["arkit"] = smoothed(data["arkit"], data["fps"], context.scene.dphm)
        first = s.first_frame + s.take_first_frame
        motion = s.motion.lower()
        stem = self._take.stem
        if self.kind == "SHAPE_KEYS":
            obj = writers.bake_frame_keys(data, f"DPHM {stem}", first, motion)
        elif self.kind == "ARKIT":
            obj = writers.bake_arkit_keys(data, f"DPHM {stem} ARKit", first, "object")
        elif self.kind == "MESH_CACHE":
            pc2 = work_dir(context) / f"{stem}.pc2"
            obj = writers.bake_mesh_cache(data, pc2, f"DPHM {stem} cache", first, motion)
        else:
            meshes, _ = read_meshes(job.result["meshes"])
            abc = work_dir(context) / f"{stem}.abc"
            obj = writers.bake_alembic(
                meshes,
                abc,
                data["fps"],
                first,
                f"DPHM {stem} Alembic",
                writers.world_matrices(data),
                motion,
            )
        scene = context.scene
        scene.frame_start, scene.frame_end = first, first + len(data["frames"]) - 1
        for o in context.view_layer.objects:
            o.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        res = float(data["residual_mm"].max())
        self.report(
            {"INFO"},
            f"DPHM: baked {len(data['frames'])} frames as {self.kind.lower()}"
            f" ({len(data['rest'])} vertices, inverse residual <= {res:.3f} mm)",
        )
        return None


class DPHM_OT_appearance(EngineOperator, Operator):
    """Fit a Gaussian appearance head to the take's colour frames (every fifth held out);
    bakes then wear its colours, and a splatting .ply lands beside the .blend"""

    bl_idname = "dphm.appearance"
    bl_label = "Appearance"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        s = scene_take(cls, context)
        if s is None:
            return False
        if not s.capture_path:
            cls.poll_message_set("The take's capture is not known (Capture panel)")
            return False
        return True

    def first_job(self, context):
        s = context.scene.dphm
        take = take_file(s)
        return engine_for(context).submit(
            "appearance",
            take=str(take),
            capture=str(absolute(s.capture_path)),
            out=str(work_dir(context) / f"{take.stem}.appearance"),
            gaussians=s.appearance_gaussians,
            iterations=s.appearance_iterations,
        )

    def next_job(self, context, job):
        s, scores = context.scene.dphm, job.result["scores"]
        s.appearance = relative(job.result["appearance"])
        g, p = scores["gaussians"], scores["projected"]
        self.report({"INFO"}, f"DPHM: appearance fitted: held-out PSNR {g['psnr']:.1f} dB "
                    f"(projected colours {p['psnr']:.1f}), SSIM {g['ssim']:.3f}; bake to "
                    "see it")  # fmt: skip
        return None


CLASSES = (DPHM_OT_bake, DPHM_OT_appearance)
