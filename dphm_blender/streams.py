"""Which streaming operators (live preview, recording, live tracking) run, and Stop.

The one home of that state: operators call ``begin``/``end`` and ``stop_requested``, the
panels and polls ask ``any_running``/``is_running``/``is_live``, the Stop button calls
``request_stop``.
"""

# Scene source (``scene.dphm.source``) -> the engine's live input spec.
LIVE = {
    "K4A": "live:k4a",
    "ORBBEC": "live:orbbec",
    "REALSENSE": "live:realsense",
    "RECORD3D": "live:record3d",
}
_running: set[str] = set()
_stop: set[str] = set()


def is_live(source: str) -> bool:
    return source in LIVE


def live_input(source: str) -> str:
    return LIVE[source]


def begin(idname: str) -> None:
    _running.add(idname)
    _stop.discard(idname)


def end(idname: str) -> None:
    _running.discard(idname)
    _stop.discard(idname)


def any_running() -> bool:
    return bool(_running)


def is_running(idname: str) -> bool:
    return idname in _running


def request_stop() -> None:
    """The Stop button: every running stream ends and keeps what it made."""
    _stop.update(_running)


def stop_requested(idname: str) -> bool:
    """True once after Stop was pressed for ``idname``."""
    if idname in _stop:
        _stop.discard(idname)
        return True
    return False
