"""Every ffmpeg and ffprobe argv, as pure functions of the tools' settings, the conversion options
and the probe (a probe.MediaInfo): no I/O here, so each list is unit-tested as it is.

Inputs are restricted before they are opened: known video/audio demuxers only, and the one
protocol the input needs (the pipe, or the spooled file).
"""
import dataclasses

import ffmpeg

from services.common.options import AUTO, NONE, SAMPLE_RATES, ConversionOptions

PIPE = "pipe:0"  # the upload fed on stdin

# demuxers ffmpeg may use on uploads: video/audio containers only, no playlists (hls, concat),
# no image sequences, nothing that opens other files or URLs.
FORMAT_WHITELIST = ",".join([
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts",
    "mpeg", "ogg", "asf", "wav", "mp3", "aac", "flac", "dv",
])
COVER_PX = 600
COVER_AT = 0.10  # a video frame at this fraction of the duration when the upload has no picture

# EBU R128 target (contract: -16 LUFS integrated). A wide loudness range and -1 dBTP let loudnorm
# apply one linear gain to most material; it falls back to its dynamic mode otherwise.
LOUDNESS = {"I": -16, "TP": -1.0, "LRA": 20}


@dataclasses.dataclass(frozen=True)
class Tools:
    """The programs and the deployment's settings every argv is built from."""
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    quality: int = 2                # LAME VBR quality when the job asks for none
    max_duration: float = 4 * 3600  # seconds; also caps the output's size
    progress_period: float = 1.0    # seconds between ffmpeg's -progress reports


def probe(tools, path, formats="mp3"):
    """ffprobe's JSON (format, streams, chapters) of `path`, reading only `formats`."""
    return [tools.ffprobe, "-v", "error", "-format_whitelist", formats,
            "-protocol_whitelist", "pipe" if path == PIPE else "file",
            "-show_format", "-show_streams", "-show_chapters", "-of", "json", path]


def encode(tools, source, target, options=None, info=None, loudness=None):
    """ffmpeg argv: the chosen audio only, to MP3 (VBR quality, CBR bitrate or a copy), capped in
    duration and size, with live progress on stdout and no tags (mutagen writes those).
    `loudness`: the first pass's measurements (loudness.parse_ebur128): one gain (volume) when
    that is loudnorm's linear mode, else loudnorm's dynamic mode."""
    options = options or ConversionOptions()
    audio = _input(source)["a:%d" % options.track]
    kwargs = dict(_limits(tools, options), format="mp3", vn=None, sn=None, dn=None, map_metadata=-1,
                  map_chapters=-1, id3v2_version=0, write_id3v1=0)
    if copies(options, info):
        kwargs["acodec"] = "copy"
    else:
        kwargs["acodec"] = "libmp3lame"
        if options.bitrate:
            kwargs["b:a"] = "%dk" % options.bitrate
        else:
            kwargs["q:a"] = tools.quality if options.quality is None else options.quality
        source_audio = _track(options, info)
        rate = options.sample_rate or nearest_rate(source_audio.get("sample_rate"))
        if rate and (loudness or options.sample_rate or rate != source_audio.get("sample_rate")):
            kwargs["ar"] = rate
        if options.channels:
            kwargs["ac"] = options.channels
        elif source_audio.get("channels", 0) > 2:
            kwargs["ac"] = 2
        if loudness and loudnorm_mode(loudness) == "linear":
            audio = audio.filter("volume", volume="%.2fdB" % linear_gain(loudness))
        elif loudness:
            audio = audio.filter("loudnorm", **loudnorm_filter(loudness))
    return _compile(tools, audio.output(target, **kwargs), "-v", "error", *_progress(tools))


def measure(tools, source, options):
    """First pass: EBU R128 loudness and true peak of the chosen audio (ebur128, which runs at
    48 kHz, where loudnorm's own measuring pass upsamples to 192 kHz); its summary on stderr."""
    audio = _audio(source, options).filter("ebur128", peak="true", framelog="verbose")
    out = audio.output("-", format="null", vn=None, sn=None, dn=None, **_limits(tools, options))
    return _compile(tools, out, "-v", "info", *_progress(tools))


def measure_dynamic(tools, source, options):
    """loudnorm's own measuring pass (JSON on stderr, hence -v info), for its dynamic mode, whose
    second pass needs this pass's target_offset; loudnorm upsamples to 192 kHz, so it is run only
    when ebur128's measurements call for that mode."""
    audio = _audio(source, options).filter("loudnorm", print_format="json", **LOUDNESS)
    out = audio.output("-", format="null", vn=None, sn=None, dn=None, **_limits(tools, options))
    return _compile(tools, out, "-v", "info", *_progress(tools))


def cover_choice(options, info):
    """(stream index, seconds or None) of the cover picture, or None for none: the upload's
    attached picture (no time) when it has one, else a video frame at COVER_AT of the duration
    (or at the `cover` option's seconds)."""
    choice = options.cover if options.cover is not None else AUTO
    if choice == NONE or info is None:
        return None
    if choice == AUTO and info.picture >= 0:
        return info.picture, None
    if info.video < 0:
        return None
    at = choice if choice != AUTO else round(info.duration * COVER_AT, 3)
    if info.duration and at >= info.duration:
        return None
    return info.video, at


def cover(tools, source, options, info):
    """The argvs to try in turn for the cover picture (each writes one JPEG on stdout); [] for
    none. A video frame is looked for among key frames first, which is much faster on a pipe,
    then among any frames, as there may be no key frame after that time."""
    choice = cover_choice(options, info)
    if choice is None:
        return []
    stream_index, at = choice
    if at is None:
        return [cover_frame(tools, source, stream_index)]
    return [cover_frame(tools, source, stream_index, at, keyframes)
            for keyframes in ([True, False] if at else [False])]


def cover_frame(tools, source, stream_index, at=None, keyframes=False):
    """One JPEG of at most COVER_PX on stdout from stream `stream_index` (an int from the probe),
    at `at` seconds (output side, as for the trim); `keyframes` decodes key frames only, on one
    thread: the decoder's frame threads cost more than they save on a few key frames (the frame at
    60 s of the 10-minute bench video: 0.12-0.14 s wall, 0.12-0.15 s CPU, against 0.21-0.26 s and
    0.19-0.22 s; the same JPEG), and the process runs beside the encoding, on the other core."""
    seek = {"ss": round(float(at), 3)} if at is not None else {}
    picture = _input(source, **({"skip_frame": "nokey", "threads": 1} if keyframes else {}))[
        "%d" % int(stream_index)]
    picture = picture.filter("scale", w="min(%d,iw)" % COVER_PX, h="min(%d,ih)" % COVER_PX,
                             force_original_aspect_ratio="decrease")
    out = picture.output("pipe:1", format="image2pipe", vcodec="mjpeg", pix_fmt="yuvj420p", **seek,
                         **{"frames:v": 1, "q:v": 4, "an": None, "sn": None, "dn": None})
    return _compile(tools, out, "-v", "error")


def copies(options, info):
    """Copy the stream when the chosen audio is MP3 already and no option changes the audio."""
    return _track(options, info).get("codec") == "mp3" and not options.reencode


def nearest_rate(rate):
    """The MP3 sample rate closest to `rate` (the higher one on a tie); None when unknown."""
    if not rate:
        return None
    return min(SAMPLE_RATES, key=lambda candidate: (abs(candidate - rate), -candidate))


def loudnorm_filter(measured):
    """loudnorm's arguments for a second pass in its dynamic mode (a linear gain would clip or
    the loudness range is too wide), from the first pass's measurements."""
    return dict(LOUDNESS, measured_I=measured["input_i"], measured_TP=measured["input_tp"],
                measured_LRA=measured["input_lra"], measured_thresh=measured["input_thresh"],
                offset=measured["target_offset"], linear="true", print_format="none")


def linear_gain(measured):
    """dB that bring the measured integrated loudness to the target: what loudnorm's linear mode
    applies, done here by the volume filter at the audio's own rate."""
    return LOUDNESS["I"] - measured["input_i"]


def loudnorm_mode(measured):
    """The mode loudnorm will pick (its own rule): linear when the gain keeps the true peak under
    TP and the loudness range fits, else dynamic."""
    fits = measured["input_tp"] + linear_gain(measured) <= LOUDNESS["TP"]
    return "linear" if fits and measured["input_lra"] <= LOUDNESS["LRA"] else "dynamic"


def _track(options, info):
    """The probe's facts about the chosen audio track ({} when unknown)."""
    audio = info.audio if info is not None else []
    return audio[options.track] if options.track < len(audio) else {}


def _input(source, **kwargs):
    protocol = "pipe" if source == PIPE else "file"
    return ffmpeg.input(source, format_whitelist=FORMAT_WHITELIST, protocol_whitelist=protocol,
                        **kwargs)


def _audio(source, options):
    return _input(source)["a:%d" % options.track]


def _limits(tools, options):
    """Output options: the trim and the caps. The trim is on the output side (ffmpeg inserts
    sample-accurate trim filters): an input-side seek on a pipe makes some demuxers (Matroska)
    read the whole input looking for an index and then fail."""
    limit = tools.max_duration + 1
    kwargs = {"fs": int((tools.max_duration + 60) * 40000)}
    if options.start:
        kwargs["ss"] = options.start
    if options.end is not None:
        limit = min(limit, round(options.end - (options.start or 0), 3))
    kwargs["t"] = limit
    return kwargs


def _progress(tools):
    return ("-progress", "pipe:1", "-stats_period", "%g" % tools.progress_period)


def _compile(tools, stream, *extra):
    return stream.global_args("-hide_banner", "-nostdin", "-nostats", *extra).overwrite_output() \
        .compile(cmd=tools.ffmpeg)
