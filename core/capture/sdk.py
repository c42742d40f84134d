"""Camera SDKs are optional: import one, or say in one line what is missing and how to get it."""

import importlib

from ..errors import DPHMError


def load(module: str, what: str, hint: str):
    """``module`` imported; else one DPHMError naming ``what`` needs it and ``hint``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise DPHMError(f"{what} needs {module}: {hint}") from e
    except (ImportError, OSError) as e:  # installed, but a native library is missing
        raise DPHMError(f"{module} is installed but cannot load ({e}); {hint}") from e
