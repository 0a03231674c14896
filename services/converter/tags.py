"""The MP3's ID3 tag, rendered with mutagen: text tags, chapters (CHAP/CTOC), cover (APIC).

ID3v2.3: the version every player reads (Windows Explorer and Media Player, older iTunes, car and
portable players ignore or garble v2.4); CHAP/CTOC are defined for v2.3 too. mutagen stores text as
UTF-16 with BOM and the date as TYER in v2.3.
Everything taken from the upload is untrusted: cleaned by options.clean_text (controls, CR/LF, bidi
overrides removed, length capped) and only ever written into the tag.
"""
import io
import re

from mutagen.id3 import APIC, CHAP, COMM, CTOC, ID3, TALB, TCON, TDRC, TIT2, TPE1, CTOCFlags, Encoding, \
    PictureType

from services.common.options import MAX_TEXT, clean_text

ID3_VERSION = 3
# the upload's metadata keys (lower-cased; Matroska writes them upper-case) -> ID3 frame
TEXT_FRAMES = {"title": TIT2, "artist": TPE1, "album": TALB, "date": TDRC, "genre": TCON}
SOURCE_KEYS = tuple(TEXT_FRAMES) + ("comment",)
MAX_PICTURE = 4 * 1024 * 1024
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?")
NO_OFFSET = 0xFFFFFFFF


def pick_tags(raw):
    """The tags we carry over, cleaned, from an upload's container metadata."""
    found = {}
    for key, value in (raw or {}).items():
        name = str(key).lower()
        if name in SOURCE_KEYS and name not in found:
            text = clean_text(value, MAX_TEXT)
            if name == "date":
                match = _DATE.match(text)
                text = match.group(0) if match else ""
            if text:
                found[name] = text
    return found


def frames_for(tags, chapters, options, picture, duration):
    """ID3 frames for the MP3: `tags` from the upload (already cleaned) with the options' overrides,
    `chapters` [(start, end, title)] in the upload's time, moved into the trimmed MP3's time."""
    tags = dict(tags)
    for name in ("title", "artist", "album"):
        value = getattr(options, name)
        if value is not None:
            tags[name] = clean_text(value, MAX_TEXT)
    frames = [TEXT_FRAMES[name](encoding=Encoding.UTF8, text=[value])
              for name, value in tags.items() if name in TEXT_FRAMES and value]
    if tags.get("comment"):
        frames.append(COMM(encoding=Encoding.UTF8, lang="eng", desc="", text=[tags["comment"]]))
    frames += chapter_frames(chapters, options.start or 0.0, duration)
    if picture and len(picture) <= MAX_PICTURE:
        frames.append(APIC(encoding=Encoding.UTF8, mime="image/jpeg", type=PictureType.COVER_FRONT,
                           desc="Cover", data=picture))
    return frames


def shift_chapters(chapters, start, duration):
    """[(start_ms, end_ms, title)] of the chapters inside the MP3 (0..duration), shifted by the
    trim's start and cut at both ends; chapters left empty are dropped."""
    kept = []
    for begin, end, title in chapters:
        begin, end = max(0.0, begin - start), min(duration, end - start)
        if end - begin >= 0.001:
            kept.append((int(round(begin * 1000)), int(round(end * 1000)), clean_text(title, MAX_TEXT)))
    return kept


def chapter_frames(chapters, start, duration):
    kept = shift_chapters(chapters, start, duration)
    if not kept:
        return []
    ids = ["chp%d" % number for number in range(len(kept))]
    frames = [CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                   child_element_ids=ids, sub_frames=[TIT2(encoding=Encoding.UTF8, text=["Chapters"])])]
    for element_id, (begin, end, title) in zip(ids, kept):
        frames.append(CHAP(element_id=element_id, start_time=begin, end_time=end,
                           start_offset=NO_OFFSET, end_offset=NO_OFFSET,
                           sub_frames=[TIT2(encoding=Encoding.UTF8,
                                            text=[title or "Chapter %d" % (len(frames))])]))
    return frames


def render(frames, size=None):
    """The ID3v2.3 tag holding `frames` (b"" when none), padded to `size` bytes when it is smaller
    (the size planned for it before the audio was stored behind it)."""
    if not frames:
        return b""
    tag = ID3()
    for frame in frames:
        tag.add(frame)
    tag.update_to_v23()  # v2.4-only frames (TDRC) to their v2.3 forms (TYER); save() does not
    out = io.BytesIO()
    # saved into nothing, mutagen's info.padding is minus the unpadded tag's size
    tag.save(out, v2_version=ID3_VERSION, v1=0,
             padding=lambda info: max(0, (size or 0) + info.padding))
    return out.getvalue()
