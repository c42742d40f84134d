"""Checkpoint files: a versioned, checksummed container for the head model and the priors.

On disk: ``torch.save({"format": "dphm-ckpt/1", "kind": ..., "sha256": ..., "payload":
bytes})`` where ``payload`` is itself a ``torch.save`` of the content (config, weights in
fp16, latent codebooks, data normalisation, training notes) and ``sha256`` is its digest.
Loading checks the container, the format version and the digest, and names the file and
the problem when any check fails.
"""

import hashlib
import io
import os
from pathlib import Path

import torch

from ..errors import DPHMError

FORMAT = "dphm-ckpt/1"


def save(path, kind: str, content: dict, half: bool = True) -> str:
    """Write atomically (float weights in fp16 when ``half``); returns the sha256."""
    content = dict(content)
    if half and "state_dict" in content:
        content["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in content["state_dict"].items()
        }
    buf = io.BytesIO()
    torch.save(content, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save({"format": FORMAT, "kind": kind, "sha256": digest, "payload": payload}, tmp)
    os.replace(tmp, path)
    return digest


def _container(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DPHMError(f"{path}: checkpoint not found")
    try:
        box = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DPHMError(f"{path}: not a readable checkpoint (damaged or truncated: {e})") from e
    if not isinstance(box, dict) or box.get("format") != FORMAT:
        found = box.get("format") if isinstance(box, dict) else type(box).__name__
        raise DPHMError(f"{path}: not a DPHM checkpoint of format {FORMAT} (found {found!r})")
    return box


def peek(path) -> dict:
    """Kind and sha256 without unpacking the payload."""
    box = _container(path)
    return {"kind": box["kind"], "sha256": box["sha256"], "format": box["format"]}


def load(path, kind: str | None = None) -> dict:
    """The content dict, with ``sha256`` and ``path`` added; float weights back in fp32."""
    box = _container(path)
    if kind is not None and box["kind"] != kind:
        raise DPHMError(f"{path}: is a {box['kind']!r} checkpoint, expected {kind!r}")
    payload = box["payload"]
    if hashlib.sha256(payload).hexdigest() != box["sha256"]:
        raise DPHMError(f"{path}: checksum mismatch, the file is damaged")
    content = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if "state_dict" in content:
        content["state_dict"] = {
            k: v.float() if v.is_floating_point() else v for k, v in content["state_dict"].items()
        }
    content["sha256"] = box["sha256"]
    content["path"] = str(path)
    return content
