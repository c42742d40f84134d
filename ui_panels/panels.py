"""The "DPHM" tab of the 3D view's sidebar: Capture, Track, Bake and Sample panels."""

from bpy.types import Panel

from ..dphm_blender import engine, streams


def _switched_row(layout, s, switch, *props, label=False):
    """A checkbox and the settings it switches on, greyed out while it is off."""
    row = layout.row(align=True)
    row.prop(s, switch, **({} if label else {"text": ""}))
    sub = row.row(align=True)
    sub.active = getattr(s, switch)
    for name in props:
        sub.prop(s, name, **({"text": ""} if label else {}))


class _DPHMPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DPHM"

    @classmethod
    def poll(cls, context):
        return getattr(context.scene, "dphm", None) is not None


class DPHM_PT_capture(_DPHMPanel, Panel):
    bl_label = "Capture"

    def draw(self, context):
        s, layout = context.scene.dphm, self.layout
        layout.prop(s, "source")
        if s.source == "FILE":
            layout.prop(s, "source_file")
        elif s.source == "FOLDER":
            layout.prop(s, "source_folder")
        elif s.source == "SIMULATED":
            col = layout.column(align=True)
            col.prop(s, "sim_sequence")
            col.prop(s, "sim_identity")
            col.prop(s, "sim_frames")
            col.prop(s, "sim_camera")
            row = col.row(align=True)
            row.prop(s, "sim_roll")
            row.prop(s, "sim_distance")
            col.prop(s, "sim_color")
        layout.prop(s, "preview_points")
        row = layout.row(align=True)
        if streams.any_running():
            row.operator("dphm.stop_live", icon="SNAP_FACE")
        else:
            row.operator("dphm.capture_preview", icon="HIDE_OFF")
            if streams.is_live(s.source):
                row.operator("dphm.record", icon="REC")
        if s.capture_path:
            layout.label(text=f"Capture: {s.capture_path}", icon="FILE_MOVIE")
        if not context.blend_data.filepath:
            layout.label(text="Save the .blend first: files go beside it", icon="ERROR")


class DPHM_PT_track(_DPHMPanel, Panel):
    bl_label = "Track"

    def draw(self, context):
        s, layout = context.scene.dphm, self.layout
        layout.prop(s, "quality")
        layout.prop(s, "prior_strength", slider=True)
        layout.prop(s, "use_landmarks")
        layout.prop(s, "use_refine")
        _switched_row(layout, s, "use_range", "range_start", "range_end")
        _switched_row(layout, s, "use_neutral", "neutral_start", "neutral_end")
        layout.prop(s, "arkit_gains")
        if streams.is_running("dphm.track"):
            layout.operator("dphm.stop_live", text="Stop tracking", icon="SNAP_FACE")
        else:
            live = streams.is_live(s.source)
            layout.operator("dphm.track", text="Track live" if live else "Track", icon="TRACKING")
        if s.take:
            layout.prop(s, "take")
        for status in engine.job_statuses():
            layout.label(text=status, icon="SORTTIME")


class DPHM_PT_bake(_DPHMPanel, Panel):
    bl_label = "Bake"

    def draw(self, context):
        s, layout = context.scene.dphm, self.layout
        col = layout.column(align=True)
        col.prop(s, "resolution")
        col.prop(s, "alembic_resolution")
        layout.prop(s, "motion")
        _switched_row(layout, s, "smooth_arkit", "smooth_min_cutoff", "smooth_beta", label=True)
        col = layout.column(align=True)
        for kind, label, icon in (
            ("SHAPE_KEYS", "Shape keys", "SHAPEKEY_DATA"),
            ("ARKIT", "ARKit-52 keys", "MONKEY"),
            ("MESH_CACHE", "Mesh cache (PC2)", "MOD_MESHDEFORM"),
            ("ALEMBIC", "Alembic", "FILE_CACHE"),
        ):
            col.operator("dphm.bake", text=label, icon=icon).kind = kind
        box = layout.box()
        box.label(text="Appearance (colour frames)", icon="SHADING_TEXTURE")
        row = box.row(align=True)
        row.prop(s, "appearance_gaussians")
        row.prop(s, "appearance_iterations")
        box.operator("dphm.appearance", icon="BRUSH_DATA")
        if s.appearance:
            box.label(text=f"Bakes wear {s.appearance}", icon="CHECKMARK")


class DPHM_PT_sample(_DPHMPanel, Panel):
    bl_label = "Sample"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s, layout = context.scene.dphm, self.layout
        col = layout.column(align=True)
        col.prop(s, "sample_identities")
        col.prop(s, "sample_expressions")
        col = layout.column(align=True)
        col.prop(s, "sample_seed")
        col.prop(s, "sample_steps")
        col.prop(s, "sample_resolution")
        layout.prop(s, "sample_spacing")
        layout.operator("dphm.sample_heads", icon="COMMUNITY")
        row = layout.row(align=True)
        row.operator("dphm.reroll_head", icon="FILE_REFRESH")
        row.operator("dphm.interpolate_heads", icon="IPO_EASE_IN_OUT")
        layout.prop(s, "interpolation_steps")


class DPHM_PT_transfer(_DPHMPanel, Panel):
    bl_label = "Transfer"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s, layout = context.scene.dphm, self.layout
        layout.prop(s, "transfer_target")
        if s.transfer_target == "PRIOR":
            layout.prop(s, "transfer_seed")
        elif s.transfer_target == "CODEBOOK":
            layout.prop(s, "transfer_identity")
        elif s.transfer_target == "TAKE":
            layout.prop(s, "transfer_take")
        else:
            obj = context.active_object
            layout.label(
                text=f"Character: {obj.name}"
                if obj and obj.type == "MESH"
                else "Select the character's mesh",
                icon="MESH_DATA",
            )
            row = layout.row(align=True)
            row.prop(s, "up_axis")
            row.prop(s, "forward_axis")
            layout.operator("dphm.place_landmarks", icon="EMPTY_AXIS")
        layout.prop(s, "transfer_output")
        layout.prop(s, "transfer_motion")
        layout.operator("dphm.transfer", icon="MOD_DATA_TRANSFER")
        box = layout.box()
        box.label(text="Existing ARKit shape keys")
        box.prop(s, "arkit_csv")
        box.operator("dphm.drive_arkit_keys", icon="SHAPEKEY_DATA")
        box.operator("dphm.export_arkit_csv", icon="EXPORT")


CLASSES = (DPHM_PT_capture, DPHM_PT_track, DPHM_PT_bake, DPHM_PT_sample, DPHM_PT_transfer)
