"""Warnings about damaged or odd input that still yields usable frames."""

import warnings


class CaptureWarning(UserWarning):
    """Input that can be read, but not all of it or not as it claims (the message names it)."""


def warn(message: str) -> None:
    warnings.warn(message, CaptureWarning, stacklevel=3)
