"""The gateway's sniff: which uploads convert as they arrive."""
import struct

import pytest

from services.common.containers import streamable


def box(kind, payload=b"", size=None):
    return struct.pack(">I4s", size or 8 + len(payload), kind) + payload


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")


@pytest.mark.parametrize("head", [
    b"\x1a\x45\xdf\xa3\x01\x00\x00\x00" + b"\x00" * 100,           # Matroska / WebM
    b"FLV\x01\x05\x00\x00\x00\x09",                                 # FLV
    bytes([0x47] + [0] * 187) * 3,                                  # MPEG-TS
    FTYP + box(b"moov", b"\x00" * 64),                              # faststart MP4
    FTYP + box(b"free", b"\x00" * 8) + box(b"moov", size=100000),   # moov past the sniffed bytes
])
def test_streamable(head):
    assert streamable(head)


@pytest.mark.parametrize("head", [
    FTYP + box(b"mdat", size=10 ** 9),          # moov at the end
    FTYP + box(b"free", b"\x00" * 8) + box(b"mdat", size=100),
    FTYP,                                       # cut before the next box: unknown
    b"RIFF\x00\x00\x00\x00AVI ",                # AVI: converts after the last byte
    bytes([0x47] + [0] * 187) * 2 + b"\x00" * 188,
    box(b"ftyp", size=4),                       # a box smaller than its header
    b"", b"\x00" * 10,
])
def test_not_streamable(head):
    assert not streamable(head)
