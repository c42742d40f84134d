"""A stand-in for bpy's UILayout that records what a panel draws (no window needed): the
first-panel benchmark and the tests' Blender scenarios draw the panels through it.

Every label, prop and operator is logged; a prop whose name the data does not have, or an
operator id Blender does not know, is logged as ``missing_prop`` / ``missing_operator``,
which is what a real layout would show as an error in the panel.
"""


class RecordingLayout:
    def __init__(self, log, ops=None):
        self.log = log
        self.ops = ops  # bpy.ops, to check operator ids; None skips the check
        self.active = self.enabled = True

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log, self.ops)

    box = row = column = split = _child

    def label(self, text="", icon="NONE"):
        self.log.append(("label", text))

    def prop(self, data, name, **kwargs):
        known = getattr(getattr(data, "bl_rna", None), "properties", None)
        missing = known is not None and name not in known
        self.log.append(("missing_prop" if missing else "prop", name))

    def operator(self, idname, text="", icon="NONE"):
        kind = "operator"
        if self.ops is not None:
            module, _, name = idname.partition(".")
            if name not in dir(getattr(self.ops, module)):
                kind = "missing_operator"
        self.log.append((kind, idname))

        class Props:
            pass

        return Props()

    def separator(self, **kwargs):
        pass
