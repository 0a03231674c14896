"""What ffprobe tells about a file: the upload's streams, duration, tags and chapters (all
untrusted but the numbers), and the duration of the MP3 we wrote."""
import dataclasses
import json
import logging
import math

from services.converter import tags as id3
from services.converter.exceptions import ConversionError
from services.converter.media.errors import NO_AUDIO

log = logging.getLogger(__name__)

MAX_CHAPTERS = 256


@dataclasses.dataclass
class MediaInfo:
    duration: float = 0.0
    audio: list = dataclasses.field(default_factory=list)  # [{"codec", "sample_rate", "channels"}]
    video: int = -1     # absolute index of the first real video stream, -1 when none
    picture: int = -1   # absolute index of an attached picture, -1 when none
    tags: dict = dataclasses.field(default_factory=dict)
    chapters: list = dataclasses.field(default_factory=list)  # [(start, end, title)]

    @classmethod
    def from_probe(cls, data):
        """From ffprobe's JSON (-show_format -show_streams -show_chapters)."""
        info = cls(duration=_number(data.get("format", {}).get("duration")))
        for stream in data.get("streams", []):
            kind, index = stream.get("codec_type"), stream.get("index")
            if not isinstance(index, int):
                continue
            if kind == "audio":
                info.audio.append({"codec": stream.get("codec_name"),
                                   "sample_rate": int(_number(stream.get("sample_rate"))),
                                   "channels": int(_number(stream.get("channels"))),
                                   "tags": stream.get("tags") or {}})
            elif kind == "video" and (stream.get("disposition") or {}).get("attached_pic"):
                info.picture = index if info.picture < 0 else info.picture
            elif kind == "video" and info.video < 0:
                info.video = index
        info.tags = id3.pick_tags(data.get("format", {}).get("tags") or {})
        for chapter in data.get("chapters", [])[:MAX_CHAPTERS]:
            info.chapters.append((_number(chapter.get("start_time")), _number(chapter.get("end_time")),
                                  (chapter.get("tags") or {}).get("title", "")))
        return info


def media_info(exit):
    """The upload's MediaInfo from ffprobe's Exit; empty when ffprobe failed (ffmpeg will then tell
    why). Raises ConversionError when the upload has streams but no audio."""
    if exit.returncode != 0:
        log.info("probe failed (%s); ffmpeg will tell why", exit.errors.strip()[-200:])
        return MediaInfo()
    data = _json(exit.output)
    if data is None:
        return MediaInfo()
    info = MediaInfo.from_probe(data)
    if not info.audio and data.get("streams"):
        raise ConversionError(NO_AUDIO)
    return info


def duration(exit):
    """Seconds of the file ffprobe's Exit describes; 0.0 when unknown."""
    data = _json(exit.output) if exit.returncode == 0 else None
    try:
        return float((data or {}).get("format", {}).get("duration") or 0)
    except (TypeError, ValueError):
        return 0.0


def _json(output):
    try:
        data = json.loads(output.decode("utf-8", "replace") or "{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number >= 0 else 0.0
