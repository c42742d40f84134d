"""The scene's DPHM settings (``scene.dphm``): what the Capture, Track, Bake and Sample
panels show, and the files of the current work, kept relative to the .blend (``//``)."""

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)
from bpy.types import PropertyGroup

from ..core.appearance import GAUSSIANS, ITERATIONS
from ..core.capture.profiles import DEFAULT as DEFAULT_PROFILE
from ..core.capture.profiles import PROFILES
from ..core.capture.sequences import NAMES

# Blender 4.5+ warns on "//" paths unless the property says it takes them.
_PATH = {"PATH_SUPPORTS_BLEND_RELATIVE"} if bpy.app.version >= (4, 5, 0) else set()
SOURCES = (
    ("FILE", "Recording", "An Azure Kinect .mkv, RealSense .bag or Record3D .r3d file"),
    ("FOLDER", "Capture folder", "A DPHM capture folder (depth PNGs + intrinsics.json)"),
    ("K4A", "Azure Kinect (live)", "Azure Kinect through pyk4a"),
    ("ORBBEC", "Orbbec (live)", "Orbbec Femto Bolt / Mega, Gemini, Astra through pyorbbecsdk"),
    ("REALSENSE", "RealSense (live)", "Intel RealSense through pyrealsense2"),
    ("RECORD3D", "iPhone / iPad (live)", "TrueDepth or LiDAR over USB from the Record3D app"),
    ("SIMULATED", "Simulated performer", "A simulated Azure Kinect take of an ICT-FaceKit head"),
)
QUALITIES = (
    ("preview", "Preview", "Fast: fewer points and steps, no joint refinement"),
    ("balanced", "Balanced", "The default: accurate at a few frames per second"),
    ("best", "Best", "Slow: many points and steps, long refinement windows"),
)
TARGETS = (
    ("PRIOR", "Sampled head", "An identity sampled from the identity prior (seed)"),
    ("CODEBOOK", "Model identity", "One of the head model's training identities"),
    ("TAKE", "Earlier take", "The identity tracked in another take"),
    ("CHARACTER", "Active mesh", "The active mesh object: any topology, retargeted in place"),
)
OUTPUTS = (
    ("SHAPE_KEYS", "Shape keys", "One shape key per frame"),
    ("ARKIT", "ARKit-52 keys", "The 52 ARKit shapes as shape keys, keyed with the weights"),
    ("MESH_CACHE", "Mesh cache (PC2)", "A .pc2 beside the .blend and a Mesh Cache modifier"),
)
MOTIONS = (
    ("OBJECT", "Object keyframes", "Head motion as keyframes on the object"),
    ("GEOMETRY", "Baked into geometry", "Head motion in the vertices; the object stays still"),
)


class DPHM_SceneSettings(PropertyGroup):
    source: EnumProperty(name="Source", items=SOURCES, default="SIMULATED")
    source_file: StringProperty(name="File", subtype="FILE_PATH", default="", options=_PATH)
    source_folder: StringProperty(name="Folder", subtype="DIR_PATH", default="", options=_PATH)
    sim_identity: IntProperty(name="Identity seed", default=0, min=0)
    sim_sequence: EnumProperty(
        name="Sequence", items=[(n, n.title(), f"ARKit sequence '{n}'") for n in NAMES]
    )
    sim_frames: IntProperty(name="Frames", default=60, min=2, max=3000)
    sim_camera: EnumProperty(
        name="Camera",
        description="The depth camera the simulated performer is seen by",
        items=[(p.name, p.label, f"{p.width}x{p.height}, {p.range[0]}-{p.range[1]} m")
               for p in PROFILES.values()],
        default=DEFAULT_PROFILE,
    )  # fmt: skip
    sim_roll: FloatProperty(
        name="Roll", description="Head roll in degrees (a phone held sideways: 90)",
        default=0.0, min=-180.0, max=180.0,
    )  # fmt: skip
    sim_distance: FloatProperty(
        name="Distance", description="Metres from the camera to the face (0: 0.5 to 0.8 m)",
        default=0.0, min=0.0, max=4.0, unit="LENGTH",
    )  # fmt: skip
    sim_color: BoolProperty(
        name="Colour", description="Record the camera's colour stream too (for the face "
        "landmarks)", default=True,
    )  # fmt: skip
    preview_points: IntProperty(
        name="Preview points",
        description="Depth points shown per frame",
        default=20000,
        min=1000,
        max=400000,
    )
    point_cache: StringProperty(name="Point cache", subtype="FILE_PATH", default="", options=_PATH)
    first_frame: IntProperty(
        name="First frame", description="Blender frame that shows capture frame 0", default=1
    )
    capture_path: StringProperty(
        name="Capture",
        description="The depth source being previewed and tracked",
        subtype="FILE_PATH",
        default="",
        options=_PATH,
    )

    quality: EnumProperty(name="Quality", items=QUALITIES, default="balanced")
    use_neutral: BoolProperty(
        name="Neutral",
        description="Remove the performer's resting face from the ARKit weights: the take "
        "frames given show them neutral",
        default=False,
    )
    neutral_start: IntProperty(name="From", default=0, min=0)
    neutral_end: IntProperty(name="To", default=10, min=1)
    arkit_gains: StringProperty(
        name="Gains",
        description="Scale ARKit shapes after calibration, e.g. 'eyeBlink=1.3, browInnerUp=1.2' "
        "(a name without Left/Right sets both sides)",
        default="",
    )
    smooth_arkit: BoolProperty(
        name="Smooth ARKit curves",
        description="One-Euro filter on the ARKit weights when keying them: steady at rest, "
        "fast motions keep their timing",
        default=False,
    )
    smooth_min_cutoff: FloatProperty(
        name="Min cutoff", description="Hz: lower is smoother at rest", default=1.5, min=0.05,
        max=30.0,
    )  # fmt: skip
    smooth_beta: FloatProperty(
        name="Speed", description="How fast the cutoff rises with motion (less lag)",
        default=0.5, min=0.0, max=10.0,
    )  # fmt: skip
    use_range: BoolProperty(name="Frame range", default=False)
    range_start: IntProperty(name="Start", default=0, min=0)
    range_end: IntProperty(name="End", default=60, min=1)
    prior_strength: FloatProperty(
        name="Prior strength",
        description="Weight of the diffusion priors against the depth (0: no prior)",
        default=1.0,
        min=0.0,
        max=10.0,
        soft_max=4.0,
    )
    use_landmarks: BoolProperty(
        name="Colour landmarks",
        description="Where the source has colour: face landmarks (MediaPipe, when installed "
        "in the engine) for the eyelids, brows and a steadier pose; off: depth only",
        default=True,
    )
    use_refine: BoolProperty(
        name="Refine head",
        description="After tracking, refine the performer's head beyond the model's codes "
        "from every tracked frame (a few seconds): the take, its bake and exports carry it",
        default=True,
    )
    take: StringProperty(name="Take", subtype="FILE_PATH", default="", options=_PATH)
    take_first_frame: IntProperty(name="Take's first capture frame", default=0, min=0)
    appearance: StringProperty(
        name="Appearance",
        description="The take's Gaussian appearance head (appearance.npz): bakes wear its colours",
        subtype="FILE_PATH",
        default="",
        options=_PATH,
    )
    appearance_gaussians: IntProperty(name="Gaussians", default=GAUSSIANS, min=1000, max=200_000)
    appearance_iterations: IntProperty(name="Iterations", default=ITERATIONS, min=50, max=20_000)

    motion: EnumProperty(name="Head motion", items=MOTIONS, default="OBJECT")
    resolution: IntProperty(name="Mesh resolution", default=128, min=32, max=512)
    alembic_resolution: IntProperty(name="Alembic resolution", default=96, min=32, max=384)

    transfer_target: EnumProperty(name="Onto", items=TARGETS, default="CHARACTER")
    transfer_seed: IntProperty(name="Seed", default=0, min=0)
    transfer_identity: IntProperty(name="Identity", default=0, min=0)
    transfer_take: StringProperty(
        name="Identity from", subtype="FILE_PATH", default="", options=_PATH
    )
    transfer_output: EnumProperty(name="As", items=OUTPUTS, default="ARKIT")
    transfer_motion: BoolProperty(
        name="Head motion",
        description="Also key the take's head motion on the result",
        default=False,
    )
    up_axis: EnumProperty(
        name="Up",
        items=[
            (a, a, f"The character's up axis is {a}") for a in ("Z", "Y", "-Z", "-Y", "X", "-X")
        ],
    )
    forward_axis: EnumProperty(
        name="Forward",
        items=[(a, a, f"The face looks along {a}") for a in ("-Y", "Y", "Z", "-Z", "X", "-X")],
    )
    arkit_csv: StringProperty(name="Live Link CSV", subtype="FILE_PATH", default="", options=_PATH)

    sample_identities: IntProperty(name="Identities", default=4, min=1, max=64)
    sample_expressions: IntProperty(name="Expressions", default=0, min=0, max=16)
    sample_seed: IntProperty(name="Seed", default=0, min=0)
    sample_steps: IntProperty(name="DDIM steps", default=50, min=1, max=1000)
    sample_resolution: IntProperty(name="Resolution", default=128, min=32, max=384)
    sample_spacing: FloatProperty(name="Spacing", default=0.3, min=0.05, unit="LENGTH")
    interpolation_steps: IntProperty(name="In-betweens", default=5, min=1, max=32)


CLASSES = (DPHM_SceneSettings,)


def register() -> None:
    bpy.types.Scene.dphm = PointerProperty(type=DPHM_SceneSettings)


def unregister() -> None:
    if hasattr(bpy.types.Scene, "dphm"):
        del bpy.types.Scene.dphm
