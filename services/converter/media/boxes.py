"""MP4/MOV box layout: whether an upload can be decoded from a pipe at all."""
import struct

HEADS = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def needs_seeking(stored):
    """True for an MP4/MOV whose moov box comes after its mdat (not decodable from a pipe)."""
    head = stored.read(12) if stored.seek(0) == 0 else b""
    if len(head) < 8 or head[4:8] not in HEADS:
        return False
    position = 0
    for _ in range(1000):
        stored.seek(position)
        header = stored.read(16)
        if len(header) < 8:
            return True  # no moov at all: let the file path produce the error
        size, kind = struct.unpack(">I4s", header[:8])
        if size == 1 and len(header) == 16:
            size = struct.unpack(">Q", header[8:16])[0]
        if kind == b"moov":
            return False
        if kind == b"mdat" or size == 0:
            return True
        if size < 8:
            return True
        position += size
    return True
