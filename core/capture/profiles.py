"""Depth camera profiles for the simulator: resolution, focal length, working range, noise.

Figures are the makers' published ones (datasheets, SDK calibrations) rounded, and for the
noise the usual forms: time-of-flight cameras (Azure Kinect, Femto Bolt, Kinect v2) have an
axial noise of about a millimetre growing slowly with distance (``sigma = a0 + a2 (z -
z0)^2``, Toelgyessy et al., Sensors 2021); structured light and active stereo (Kinect v1,
RealSense, TrueDepth) grow with the square of the distance, ``sigma_z = z^2 s / (f b)``
for a sub-pixel matching error ``s``, focal length ``f`` (pixels) and baseline ``b``, and
quantise depth in disparity steps (Khoshelham and Elberink, Sensors 2012, for Kinect v1).
The principal point is the image centre and the lens is taken as distortion-free. The colour
camera sits ``baseline`` to the side with its own resolution and field of view (Azure Kinect:
the 720p mode of the simulator's ``k4a_calibration.synthetic``); TrueDepth colour is
delivered registered to the depth (Record3D), so there it is aligned at twice the 320 mode.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import DPHMError
from .frame import Intrinsics


@dataclass(frozen=True)
class CameraProfile:
    name: str
    label: str
    width: int
    height: int
    fx: float  # pixels; fy = fx
    range: tuple[float, float]  # metres within which the camera reports depth
    sigma: tuple[float, float, float]  # axial noise a0 + a2 (z - z0)^2, metres
    disparity_step: float = 0.0  # inverse-depth step (1/m): depth steps of step * z^2; 0: none
    color: tuple[int, int, float] = (1280, 720, 614.4)  # the RGB camera: width, height, fx
    baseline: float = 0.032  # metres from the depth to the colour camera along +x; 0: aligned

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics(self.fx, self.fx, (self.width - 1) / 2, (self.height - 1) / 2,
                          self.width, self.height)  # fmt: skip

    @property
    def color_intrinsics(self) -> Intrinsics:
        w, h, f = self.color
        return Intrinsics(f, f, (w - 1) / 2, (h - 1) / 2, w, h)

    @property
    def depth_to_color(self) -> np.ndarray:
        """(4, 4) rigid transform, metres, depth camera -> colour camera (a side offset)."""
        T = np.eye(4)
        T[0, 3] = -self.baseline
        return T


def _stereo(z_ref: float, sigma_ref: float) -> tuple[float, float, float]:
    """Quadratic noise through (z_ref, sigma_ref) with a 0.2 mm floor."""
    return (0.0002, sigma_ref / z_ref**2, 0.0)


PROFILES = {
    p.name: p
    for p in (
        CameraProfile("azure_nfov", "Azure Kinect NFOV unbinned", 640, 576, 504.0,
                      (0.5, 3.86), (0.0006, 0.0019, 0.4)),
        CameraProfile("azure_wfov", "Azure Kinect WFOV unbinned", 1024, 1024, 504.0,
                      (0.25, 2.21), (0.0008, 0.0025, 0.4)),
        CameraProfile("femto_bolt", "Orbbec Femto Bolt NFOV unbinned", 640, 576, 504.0,
                      (0.25, 5.46), (0.0006, 0.0019, 0.4), color=(1280, 720, 763.0)),
        # D415: 65 deg HFOV at 1280x720, 55 mm baseline, 0.08 px subpixel
        CameraProfile("realsense_d415", "Intel RealSense D415 (1280x720)", 1280, 720, 1005.0,
                      (0.31, 3.0), _stereo(1.0, 0.08 / (1005.0 * 0.055)),
                      color=(1280, 720, 920.0), baseline=0.015),
        # D435: 87 deg HFOV at 848x480, 50 mm baseline
        CameraProfile("realsense_d435", "Intel RealSense D435 (848x480)", 848, 480, 447.0,
                      (0.2, 3.0), _stereo(1.0, 0.08 / (447.0 * 0.050)),
                      color=(1280, 720, 910.0), baseline=0.015),
        CameraProfile("truedepth_640", "iPhone TrueDepth 640x480", 640, 480, 590.0,
                      (0.2, 0.6), _stereo(0.3, 0.0006), 0.0, (640, 480, 590.0), 0.0),
        CameraProfile("truedepth_320", "iPhone TrueDepth 320x240", 320, 240, 295.0,
                      (0.2, 0.6), _stereo(0.3, 0.0008), 0.0, (640, 480, 590.0), 0.0),
        # Kinect v1: 580 px focal (IR), 75 mm baseline, disparity in 1/8 pixel
        CameraProfile("kinect_v1", "Microsoft Kinect v1 (640x480)", 640, 480, 525.0,
                      (0.8, 4.0), (0.0012, 0.0019, 0.4), 1 / (8 * 580.0 * 0.075),
                      (640, 480, 525.0), 0.025),
        CameraProfile("kinect_v2", "Microsoft Kinect v2 (512x424)", 512, 424, 365.0,
                      (0.5, 4.5), (0.0008, 0.0016, 0.4), color=(1920, 1080, 1060.0),
                      baseline=0.052),
    )
}  # fmt: skip
DEFAULT = "azure_nfov"


def get_profile(name: str) -> CameraProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise DPHMError(f"unknown camera profile {name!r} ({', '.join(PROFILES)})") from None
