"""Azure Kinect ``calibration.json``: intrinsics for a depth mode or colour resolution.

The file stores each camera's Brown-Conrady parameters normalised by the calibration image
size with (0, 0) at the corner of the top-left pixel, in the order cx, cy, fx, fy, k1..k6,
codx, cody, p2, p1. A mode crops and bins the calibration image; the SDK's convention (and
ours) puts (0, 0) at the centre of the top-left pixel. Arithmetic is float32, as the SDK's.
"""

import json

import numpy as np

from ..errors import DPHMError
from .frame import Intrinsics

# mode -> (calibration image resolution after binning, crop offset, output resolution)
DEPTH_MODES = {
    "NFOV_2X2BINNED": ((512, 512), (96, 90), (320, 288)),
    "NFOV_UNBINNED": ((1024, 1024), (192, 180), (640, 576)),
    "WFOV_2X2BINNED": ((512, 512), (0, 0), (512, 512)),
    "WFOV_UNBINNED": ((1024, 1024), (0, 0), (1024, 1024)),
    "PASSIVE_IR": ((1024, 1024), (0, 0), (1024, 1024)),
}
COLOR_MODES = {
    "720P": ((1280, 960), (0, 120), (1280, 720)),
    "1080P": ((1920, 1440), (0, 180), (1920, 1080)),
    "1440P": ((2560, 1920), (0, 240), (2560, 1440)),
    "1536P": ((2048, 1536), (0, 0), (2048, 1536)),
    "2160P": ((3840, 2880), (0, 360), (3840, 2160)),
    "3072P": ((4096, 3072), (0, 0), (4096, 3072)),
}
DEPTH_PURPOSE = "CALIBRATION_CameraPurposeDepth"
COLOR_PURPOSE = "CALIBRATION_CameraPurposePhotoVideo"
F32 = np.float32


def parse(text: str | bytes, where: str) -> dict:
    try:
        cams = json.loads(text)["CalibrationInformation"]["Cameras"]
        return {c["Purpose"]: c for c in cams}
    except (ValueError, KeyError, TypeError) as e:
        raise DPHMError(
            f"{where}: calibration.json is not an Azure Kinect calibration ({e})"
        ) from e


def _camera(cams: dict, purpose: str, where: str) -> dict:
    if purpose not in cams:
        raise DPHMError(f"{where}: calibration.json has no {purpose} camera")
    return cams[purpose]


def _mode_intrinsics(params, mode) -> Intrinsics:
    (bw, bh), (ox, oy), (w, h) = mode
    p = np.asarray(params, F32)
    cx = p[0] * F32(bw) - F32(ox) - F32(0.5)
    cy = p[1] * F32(bh) - F32(oy) - F32(0.5)
    fx, fy = p[2] * F32(bw), p[3] * F32(bh)
    k1, k2, k3, k4, k5, k6, _, _, p2, p1 = (float(x) for x in p[4:14])
    return Intrinsics(
        float(fx), float(fy), float(cx), float(cy), w, h, (k1, k2, p1, p2, k3, k4, k5, k6)
    )


def depth_intrinsics(text: str | bytes, depth_mode: str, where: str = "calibration.json"):
    """Intrinsics of the depth camera in ``depth_mode`` (e.g. "NFOV_UNBINNED")."""
    if depth_mode not in DEPTH_MODES:
        raise DPHMError(f"{where}: unknown depth mode {depth_mode!r}")
    cam = _camera(parse(text, where), DEPTH_PURPOSE, where)
    return _mode_intrinsics(cam["Intrinsics"]["ModelParameters"], DEPTH_MODES[depth_mode])


def color_intrinsics(text: str | bytes, resolution: str, where: str = "calibration.json"):
    """Intrinsics of the colour camera at ``resolution`` (e.g. "720P")."""
    if resolution not in COLOR_MODES:
        raise DPHMError(f"{where}: unknown colour resolution {resolution!r}")
    cam = _camera(parse(text, where), COLOR_PURPOSE, where)
    params = np.asarray(cam["Intrinsics"]["ModelParameters"], F32).copy()
    if cam["SensorWidth"] * 9 // 16 == cam["SensorHeight"]:  # legacy 16:9 calibration -> 4:3
        params[1] = (params[1] * F32(2304) + F32(384)) / F32(3072)
        params[3] = params[3] * F32(2304) / F32(3072)
    return _mode_intrinsics(params, COLOR_MODES[resolution])


def _rt(cam: dict) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.reshape(cam["Rt"]["Rotation"], (3, 3))
    m[:3, 3] = cam["Rt"]["Translation"]
    return m


def depth_to_color(text: str | bytes, where: str = "calibration.json") -> np.ndarray:
    """(4, 4) rigid transform, metres, from depth camera to colour camera coordinates."""
    cams = parse(text, where)
    return _rt(_camera(cams, COLOR_PURPOSE, where)) @ np.linalg.inv(
        _rt(_camera(cams, DEPTH_PURPOSE, where))
    )


def synthetic(depth: Intrinsics, depth_mode: str = "NFOV_UNBINNED") -> str:
    """A complete calibration.json whose depth camera has ``depth`` in ``depth_mode``.

    Used by the simulator: distortion-free depth camera, a nominal colour camera 32 mm to
    the side, and unit IMU calibrations, so that the SDK's playback accepts the file.
    """
    (bw, bh), (ox, oy), _ = DEPTH_MODES[depth_mode]
    dist = list(depth.distortion) + [0.0] * (8 - len(depth.distortion))
    k1, k2, p1, p2, k3, k4, k5, k6 = dist
    d_params = [
        (depth.cx + 0.5 + ox) / bw,
        (depth.cy + 0.5 + oy) / bh,
        depth.fx / bw,
        depth.fy / bh,
        k1,
        k2,
        k3,
        k4,
        k5,
        k6,
        0,
        0,
        p2,
        p1,
    ]
    c_params = [0.5, 0.5, 0.48, 0.64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    eye = [1, 0, 0, 0, 1, 0, 0, 0, 1]

    def camera(params, purpose, location, size, translation, radius):
        return {
            "Intrinsics": {
                "ModelParameterCount": 14,
                "ModelParameters": params,
                "ModelType": "CALIBRATION_LensDistortionModelBrownConrady",
            },
            "Location": location,
            "Purpose": purpose,
            "MetricRadius": radius,
            "Rt": {"Rotation": eye, "Translation": translation},
            "SensorHeight": size[1],
            "SensorWidth": size[0],
            "Shutter": "CALIBRATION_ShutterTypeUndefined",
            "ThermalAdjustmentParams": {"Params": [0] * 12},
        }

    def imu(kind):
        return {
            "BiasTemperatureModel": [0] * 12,
            "BiasUncertainty": [1e-4] * 3,
            "Id": "CALIBRATION_InertialSensorId_LSM6DSM",
            "MixingMatrixTemperatureModel": sum(([v, 0, 0, 0] for v in eye), []),
            "ModelTypeMask": 16,
            "Noise": [1e-3] * 3 + [0] * 3,
            "Rt": {"Rotation": eye, "Translation": [0, 0, 0]},
            "SecondOrderScaling": [0] * 9,
            "SensorType": kind,
            "TemperatureBounds": [5, 60],
            "TemperatureC": 0,
        }

    info = {
        "Cameras": [
            camera(
                d_params,
                DEPTH_PURPOSE,
                "CALIBRATION_CameraLocationD0",
                (1024, 1024),
                [0, 0, 0],
                1.74,
            ),
            camera(
                c_params,
                COLOR_PURPOSE,
                "CALIBRATION_CameraLocationPV0",
                (4096, 3072),
                [-0.032, 0, 0],
                0,
            ),
        ],
        "InertialSensors": [
            imu("CALIBRATION_InertialSensorType_Gyro"),
            imu("CALIBRATION_InertialSensorType_Accelerometer"),
        ],
        "Metadata": {
            "SerialId": "simulated",
            "FactoryCalDate": "",
            "Version": {"Major": 1, "Minor": 2},
            "DeviceName": "AzureKinect-PV",
            "Notes": "dphm simulate",
        },
    }
    return json.dumps({"CalibrationInformation": info}, indent=2)
