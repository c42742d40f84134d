"""The few EBML/Matroska encodings an Azure Kinect recording needs (IDs from the Matroska spec)."""

import struct

# Element IDs, with their length-marker bits.
EBML, EBML_VERSION, EBML_READ_VERSION, EBML_MAX_ID, EBML_MAX_SIZE = (
    0x1A45DFA3,
    0x4286,
    0x42F7,
    0x42F2,
    0x42F3,
)
DOCTYPE, DOCTYPE_VERSION, DOCTYPE_READ_VERSION = 0x4282, 0x4287, 0x4285
SEGMENT, SEEKHEAD, SEEK, SEEK_ID, SEEK_POSITION, VOID = (
    0x18538067,
    0x114D9B74,
    0x4DBB,
    0x53AB,
    0x53AC,
    0xEC,
)
INFO, TIMESTAMP_SCALE, DURATION, TITLE, MUXING_APP, WRITING_APP, SEGMENT_UID = (
    0x1549A966,
    0x2AD7B1,
    0x4489,
    0x7BA9,
    0x4D80,
    0x5741,
    0x73A4,
)
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_UID, TRACK_TYPE, FLAG_LACING, NAME, CODEC_ID = (
    0x1654AE6B,
    0xAE,
    0xD7,
    0x73C5,
    0x83,
    0x9C,
    0x536E,
    0x86,
)
CODEC_PRIVATE, DEFAULT_DURATION, VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT, LANGUAGE = (
    0x63A2,
    0x23E383,
    0xE0,
    0xB0,
    0xBA,
    0x22B59C,
)
ATTACHMENTS, ATTACHED_FILE, FILE_NAME, FILE_MIME, FILE_DATA, FILE_UID = (
    0x1941A469,
    0x61A7,
    0x466E,
    0x4660,
    0x465C,
    0x46AE,
)
TAGS, TAG, TARGETS, TARGET_TYPE, TAG_TRACK_UID, TAG_ATTACHMENT_UID = (
    0x1254C367,
    0x7373,
    0x63C0,
    0x63CA,
    0x63C5,
    0x63C6,
)
SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x67C8, 0x45A3, 0x4487
CLUSTER, CLUSTER_TIMESTAMP, SIMPLE_BLOCK = 0x1F43B675, 0xE7, 0xA3
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION = (
    0x1C53BB6B,
    0xBB,
    0xB3,
    0xB7,
    0xF7,
    0xF1,
)

UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def element_id(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def vint(n: int, length: int | None = None) -> bytes:
    """An EBML variable-size integer (element data size)."""
    if length is None:
        length = 1
        while n >= (1 << (7 * length)) - 1:
            length += 1
    return ((1 << (7 * length)) | n).to_bytes(length, "big")


def element(eid: int, payload: bytes) -> bytes:
    return element_id(eid) + vint(len(payload)) + payload


def uint(eid: int, n: int) -> bytes:
    return element(eid, n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big"))


def string(eid: int, s: str) -> bytes:
    return element(eid, s.encode("utf-8"))


def float64(eid: int, x: float) -> bytes:
    return element(eid, struct.pack(">d", x))


def master(eid: int, *children: bytes) -> bytes:
    return element(eid, b"".join(children))


def void(total: int) -> bytes:
    """A Void element occupying exactly ``total`` bytes (>= 9)."""
    return element_id(VOID) + vint(total - 9, 8) + bytes(total - 9)
