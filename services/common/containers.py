"""Whether an upload can be decoded as it arrives, from its first bytes: the gateway's sniff, which
decides that a conversion may start before the last byte (services/gateway/intake.py).

ffmpeg reads Matroska/WebM, MPEG-TS, FLV, and MP4/MOV whose index (moov) comes before the media
data (faststart, fragmented MP4) from a pipe; an MP4 whose moov follows its mdat cannot be decoded
before the last byte, and anything not recognised here converts after the last byte as before.
"""
import struct

SNIFF_BYTES = 64 * 1024   # enough for every signature below and an MP4's leading boxes
EBML = b"\x1a\x45\xdf\xa3"  # Matroska, WebM
FLV = b"FLV\x01"
TS_PACKET, TS_SYNC = 188, 0x47
MP4_LEADING = (b"ftyp", b"free", b"skip", b"wide", b"uuid", b"pdin", b"styp")


def streamable(head):
    """True when the bytes `head` (the start of an upload, up to SNIFF_BYTES) show a container
    ffmpeg decodes from a stream."""
    if head.startswith(EBML) or head.startswith(FLV):
        return True
    if len(head) >= 3 * TS_PACKET and all(head[i * TS_PACKET] == TS_SYNC for i in range(3)):
        return True
    return _mp4_moov_first(head)


def _mp4_moov_first(head):
    """An MP4/MOV whose top-level boxes reach moov before any mdat (faststart, fragmented)."""
    position = 0
    while position + 8 <= len(head):
        size, kind = struct.unpack(">I4s", head[position:position + 8])
        if kind == b"moov":
            return True
        if kind not in MP4_LEADING:
            return False  # mdat first (moov at the end), or not an MP4 at all
        if size == 1 and position + 16 <= len(head):
            size = struct.unpack(">Q", head[position + 8:position + 16])[0]
        if size < 8:
            return False
        position += size
    return False
