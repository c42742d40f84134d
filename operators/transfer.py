"""Transfer panel operators: a take on another head or on the active character, manual
landmarks, driving existing ARKit keys, Live Link Face CSV out."""

import bpy
from bpy.types import Operator

from ..core.errors import DPHMError
from ..core.tracking.arkit_calibration import smoothed
from ..core.tracking.bake import read_bake
from ..core.tracking.export import read_arkit_csv
from ..core.tracking.take import read_take
from ..dphm_blender import bake as writers
from ..dphm_blender import transfer
from ..dphm_blender.jobs import EngineOperator, absolute, engine_for, scene_take, work_dir


def _take(context):
    s = context.scene.dphm
    path = absolute(s.take)
    if not s.take or not path.is_file():
        raise DPHMError(f"{path or 'no take'}: track a capture first (Track panel)")
    return path


def _character(context):
    obj = context.active_object
    return obj if obj is not None and obj.type == "MESH" else None


class DPHM_OT_transfer(EngineOperator, Operator):
    """Put the scene's take on another head, or on the active mesh (its own vertices move:
    topology, UVs and materials stay)"""

    bl_idname = "dphm.transfer"
    bl_label = "Transfer"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        s = scene_take(cls, context)
        if s is None:
            return False
        if s.transfer_target == "CHARACTER" and _character(context) is None:
            cls.poll_message_set("Make the character's mesh the active object")
            return False
        return True

    def first_job(self, context):
        s = context.scene.dphm
        take, folder = _take(context), work_dir(context)
        self._take, self._target = take, s.transfer_target
        args = {
            "take": str(take),
            "arkit_shapes": s.transfer_output == "ARKIT",
            "resolution": s.resolution,
        }
        if s.transfer_target == "CHARACTER":
            self._obj = _character(context)
            args.update(
                onto="mesh",
                landmarks=transfer.landmarks_of(self._obj),
                up=s.up_axis,
                forward=s.forward_axis,
                mesh=str(transfer.write_character(self._obj, folder / "character.npz")),
            )
            name = self._obj.name
        elif s.transfer_target == "PRIOR":
            args["onto"], name = f"identity:{s.transfer_seed}", f"prior{s.transfer_seed}"
        elif s.transfer_target == "CODEBOOK":
            args["onto"], name = f"codebook:{s.transfer_identity}", f"id{s.transfer_identity}"
        else:
            other = absolute(s.transfer_take)
            if not other.is_file():
                raise DPHMError(f"{other}: choose the take whose identity to use")
            args["onto"], name = f"take:{other}", other.stem
        self._name = f"{take.stem} on {name}"
        out = folder / f"{bpy.path.clean_name(self._name)}.bake.npz"
        return engine_for(context).submit("transfer", out=str(out), **args)

    def next_job(self, context, job):
        s, scene = context.scene.dphm, context.scene
        data = read_bake(job.result["bake"])
        data["arkit"] = smoothed(data["arkit"], data["fps"], s)
        first = s.first_frame + s.take_first_frame
        n = len(data["frames"])
        kind = s.transfer_output
        if self._target == "CHARACTER":
            obj = self._obj
            if kind == "SHAPE_KEYS":
                transfer.frame_keys(obj, data["frames"], first)
            elif kind == "ARKIT":
                transfer.arkit_keys(obj, data["arkit_shapes"], data["arkit"], first)
            else:
                pc2 = work_dir(context) / f"{bpy.path.clean_name(self._name)}.pc2"
                transfer.mesh_cache(obj, data["frames"], pc2, first, data["fps"])
            if s.transfer_motion:
                transfer.key_motion(obj, data["R"], data["t"], data["s"], first)
            detail = (
                f"fit {job.result['fit_error_mm']:.2f} mm, "
                f"{100 * job.result['moving']:.0f}% of the vertices follow the face"
            )
        else:
            motion = s.motion.lower() if s.transfer_motion else "none"
            name = f"DPHM {self._name}"
            if kind == "SHAPE_KEYS":
                obj = writers.bake_frame_keys(data, name, first, motion)
            elif kind == "ARKIT":
                obj = writers.bake_arkit_keys(
                    data, name, first, "object" if motion != "none" else "none"
                )
            else:
                pc2 = work_dir(context) / f"{bpy.path.clean_name(self._name)}.pc2"
                obj = writers.bake_mesh_cache(data, pc2, name, first, motion)
            detail = f"{len(data['rest'])} vertices"
        scene.frame_start, scene.frame_end = first, first + n - 1
        self.report({"INFO"}, f"DPHM: {self._name}: {n} frames as {kind.lower()} ({detail})")
        return None


class DPHM_OT_place_landmarks(EngineOperator, Operator):
    """Place the manual landmarks on the active mesh where the automatic alignment finds
    them; move any that are off, then Transfer uses them"""

    bl_idname = "dphm.place_landmarks"
    bl_label = "Place landmarks"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if _character(context) is None:
            cls.poll_message_set("Make the character's mesh the active object")
            return False
        return True

    def first_job(self, context):
        s = context.scene.dphm
        self._obj = _character(context)
        mesh = transfer.write_character(self._obj, work_dir(context) / "character.npz")
        return engine_for(context).submit(
            "landmarks", mesh=str(mesh), up=s.up_axis, forward=s.forward_axis
        )

    def next_job(self, context, job):
        made = transfer.place_landmarks(self._obj, job.result["landmarks"], context.scene)
        self.report({"INFO"}, f"DPHM: {len(made)} landmarks placed on {self._obj.name}")
        return None


class DPHM_OT_drive_arkit_keys(Operator):
    """Key the active object's ARKit-named shape keys (any common naming) with the take's
    ARKit weights, or with a Live Link Face CSV when one is chosen"""

    bl_idname = "dphm.drive_arkit_keys"
    bl_label = "Drive ARKit keys"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = _character(context)
        if obj is None or obj.data.shape_keys is None:
            cls.poll_message_set("Make a mesh with shape keys the active object")
            return False
        s = context.scene.dphm
        if not (s.take or s.arkit_csv):
            cls.poll_message_set("Track a take or choose a Live Link CSV")
            return False
        return True

    def execute(self, context):
        s = context.scene.dphm
        try:
            if s.arkit_csv:
                _, weights = read_arkit_csv(absolute(s.arkit_csv))
                first = s.first_frame
            else:
                weights = read_take(_take(context))["arkit"]
                first = s.first_frame + s.take_first_frame
            # one key per scene frame: the filter's clock is the scene's
            weights = smoothed(weights, context.scene.render.fps / context.scene.render.fps_base, s)
            mapping, missing = transfer.drive_keys(context.active_object, weights, first)
        except DPHMError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        context.scene.frame_start, context.scene.frame_end = first, first + len(weights) - 1
        if missing:
            self.report(
                {"WARNING"},
                f"DPHM: {len(mapping)} ARKit keys driven; missing "
                f"{len(missing)}: {', '.join(missing)}",
            )
        else:
            self.report({"INFO"}, f"DPHM: all 52 ARKit keys driven over {len(weights)} frames")
        return {"FINISHED"}


class DPHM_OT_export_arkit_csv(EngineOperator, Operator):
    """Write the take's ARKit weights and head rotation as a Live Link Face CSV beside the
    .blend"""

    bl_idname = "dphm.export_arkit_csv"
    bl_label = "Export Live Link CSV"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return bool(getattr(context.scene, "dphm", None) and context.scene.dphm.take)

    def first_job(self, context):
        take = _take(context)
        out = work_dir(context) / f"{take.stem}_livelink.csv"
        return engine_for(context).submit("arkit_csv", take=str(take), out=str(out))

    def next_job(self, context, job):
        self.report({"INFO"}, f"DPHM: {job.result['rows']} rows -> {job.result['path']}")
        return None


CLASSES = (
    DPHM_OT_transfer,
    DPHM_OT_place_landmarks,
    DPHM_OT_drive_arkit_keys,
    DPHM_OT_export_arkit_csv,
)
