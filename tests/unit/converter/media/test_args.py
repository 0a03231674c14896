"""services/converter/media/args.py: every ffmpeg and ffprobe argv, a pure function of the tools,
the options and the probe. Each test builds the whole list and checks it as ffmpeg will read it."""
import pytest

from services.common.options import ConversionOptions, parse_options
from services.converter.media import args
from services.converter.media.args import FORMAT_WHITELIST, PIPE, Tools
from services.converter.media.probe import MediaInfo

TOOLS = Tools(ffmpeg="/usr/bin/ffmpeg", ffprobe="/usr/bin/ffprobe", quality=4, max_duration=600,
              progress_period=0.5)
AAC = MediaInfo(duration=60.0, audio=[{"codec": "aac", "sample_rate": 44100, "channels": 2}])
MP3 = MediaInfo(duration=60.0, audio=[{"codec": "mp3", "sample_rate": 44100, "channels": 2}])
TWO_TRACKS = MediaInfo(duration=60.0, audio=[{"codec": "aac", "sample_rate": 44100, "channels": 2},
                                             {"codec": "aac", "sample_rate": 48000, "channels": 6}])
HEAD = ["/usr/bin/ffmpeg", "-format_whitelist", FORMAT_WHITELIST, "-protocol_whitelist", "pipe",
        "-i", "pipe:0"]
TAIL = ["-hide_banner", "-nostdin", "-nostats", "-v", "error", "-progress", "pipe:1",
        "-stats_period", "0.5", "-y"]
CAPS = ["-fs", "26400000"]  # (600 + 60) s at 320 kb/s


def options(**fields):
    return ConversionOptions.model_validate(parse_options({k: str(v) for k, v in fields.items()}))


def encode(info=AAC, loudness=None, source=PIPE, **fields):
    return args.encode(TOOLS, source, "/tmp/o.mp3", options(**fields), info, loudness)


def mp3_out(acodec="libmp3lame", ac=None, ar=None, bitrate=None, q=None, ss=None, t="601",
            source_map="0:a:0"):
    """The output part of the encoding argv (ffmpeg-python writes the options sorted by name)."""
    def opt(flag, value):
        return [flag, value] if value is not None else []
    return ["-map", source_map, "-f", "mp3", *opt("-ac", ac), "-acodec", acodec, *opt("-ar", ar),
            *opt("-b:a", bitrate), "-dn", *CAPS, "-id3v2_version", "0", "-map_chapters", "-1",
            "-map_metadata", "-1", *opt("-q:a", q), "-sn", *opt("-ss", ss), "-t", t, "-vn",
            "-write_id3v1", "0", "/tmp/o.mp3"]


def test_default_vbr():
    assert encode() == HEAD + mp3_out(q="4") + TAIL


def test_bitrate_is_cbr():
    assert encode(bitrate=192) == HEAD + mp3_out(bitrate="192k") + TAIL


def test_sample_rate_and_channels():
    assert encode(sample_rate=22050, channels=1) == HEAD + mp3_out(ac="1", ar="22050", q="4") + TAIL


def test_the_source_rate_and_layout_are_kept_unless_mp3_cannot_carry_them():
    assert "-ar" not in encode() and "-ac" not in encode()
    odd = MediaInfo(audio=[{"codec": "aac", "sample_rate": 96000, "channels": 6}])
    assert encode(info=odd) == HEAD + mp3_out(ac="2", ar="48000", q="4") + TAIL


def test_start_and_end_trim_on_the_output_side():
    assert encode(start="1:00", end="90.5") == HEAD + mp3_out(q="4", ss="60.0", t="30.5") + TAIL
    assert encode(start=5) == HEAD + mp3_out(q="4", ss="5.0") + TAIL
    assert encode(end=2000)[encode(end=2000).index("-t") + 1] == "601"  # the cap wins


def test_audio_track_maps_that_track_and_reads_its_facts():
    assert encode(info=TWO_TRACKS, audio_track=1) == HEAD + mp3_out(
        ac="2", q="4", source_map="0:a:1") + TAIL  # 48 kHz: kept


MEASURED = {"input_i": -9.5, "input_tp": -3.0, "input_lra": 4.0, "input_thresh": -19.6,
            "target_offset": 0.2}


def test_normalize_first_pass_measures_into_null():
    argv = args.measure(TOOLS, PIPE, options(normalize="true"))
    assert argv == HEAD + [
        "-filter_complex", "[0:a:0]ebur128=framelog=verbose:peak=true[s0]",
        "-map", "[s0]", "-f", "null", "-dn", *CAPS, "-sn", "-t", "601", "-vn", "-",
        "-hide_banner", "-nostdin", "-nostats", "-v", "info", "-progress", "pipe:1",
        "-stats_period", "0.5", "-y"]


def test_loudnorm_measures_itself_only_for_its_dynamic_mode():
    argv = args.measure_dynamic(TOOLS, PIPE, options(normalize="true"))
    assert argv == HEAD + [
        "-filter_complex", "[0:a:0]loudnorm=I=-16:LRA=20:TP=-1.0:print_format=json[s0]",
        "-map", "[s0]", "-f", "null", "-dn", *CAPS, "-sn", "-t", "601", "-vn", "-",
        "-hide_banner", "-nostdin", "-nostats", "-v", "info", "-progress", "pipe:1",
        "-stats_period", "0.5", "-y"]


def test_normalize_second_pass_applies_one_gain_when_loudnorm_would_be_linear():
    measured = dict(MEASURED)
    argv = encode(loudness=measured, normalize="true")
    assert argv == HEAD + ["-filter_complex", "[0:a:0]volume=volume=-6.50dB[s0]"] \
        + mp3_out(ar="44100", q="4", source_map="[s0]") + TAIL
    assert measured == MEASURED  # nothing written into the caller's measurements
    assert args.loudnorm_mode(MEASURED) == "linear"
    assert args.loudnorm_mode(dict(MEASURED, input_i=-40.0, input_tp=-2.0)) == "dynamic"


def test_normalize_second_pass_is_loudnorm_dynamic_when_one_gain_would_clip():
    argv = encode(loudness=dict(MEASURED, input_i=-40.0, input_tp=-2.0), normalize="true")
    graph = ("[0:a:0]loudnorm=I=-16:LRA=20:TP=-1.0:linear=true:measured_I=-40.0:measured_LRA=4.0:"
             "measured_TP=-2.0:measured_thresh=-19.6:offset=0.2:print_format=none[s0]")
    assert argv == HEAD + ["-filter_complex", graph] + mp3_out(ar="44100", q="4", source_map="[s0]") \
        + TAIL


def test_passthrough_copies_an_mp3_stream():
    assert encode(info=MP3) == HEAD + mp3_out(acodec="copy") + TAIL
    assert encode(info=MP3, title="x", tags="false", cover="none") == encode(info=MP3)
    assert args.copies(options(), MP3) and not args.copies(options(), AAC)
    for fields in ({"quality": 2}, {"bitrate": 128}, {"start": 1}, {"end": 5},
                   {"normalize": "true"}, {"channels": 2}, {"sample_rate": 44100}):
        assert not args.copies(options(**fields), MP3), fields
        assert "libmp3lame" in encode(info=MP3, **fields), fields


def test_the_argv_without_the_probe_is_the_one_it_confirms_for_common_audio():
    """The encoding starts before the probe answers (encoder._Encoding): the same argv then for
    the usual audio (AAC, 44.1/48 kHz, one or two channels) with any option but normalize, and
    another one only where the probe changes what is done (a copy, a resample, a downmix)."""
    for fields in ({}, {"quality": 5}, {"bitrate": 128}, {"sample_rate": 44100},
                   {"sample_rate": 22050}, {"channels": 1}, {"start": 1, "end": 5}):
        assert encode(info=None, **fields) == encode(info=AAC, **fields), fields
    odd = MediaInfo(audio=[{"codec": "aac", "sample_rate": 96000, "channels": 6}])
    for info in (MP3, odd):
        assert encode(info=None) != encode(info=info)


def test_a_spooled_file_may_use_the_file_protocol_only():
    argv = encode(source="/tmp/upload-x")
    assert argv[:7] == ["/usr/bin/ffmpeg", "-format_whitelist", FORMAT_WHITELIST,
                        "-protocol_whitelist", "file", "-i", "/tmp/upload-x"]


def cover_argv(source, stream, seek=(), keyframes=False):
    return ["/usr/bin/ffmpeg", "-format_whitelist", FORMAT_WHITELIST,
            "-protocol_whitelist", "pipe" if source == PIPE else "file",
            *(["-skip_frame", "nokey", "-threads", "1"] if keyframes else []), "-i", source,
            "-filter_complex",
            "[0:%d]scale=force_original_aspect_ratio=decrease:h=min(600\\,ih):w=min(600\\,iw)[s0]"
            % stream, "-map", "[s0]", "-f", "image2pipe", "-an", "-dn", "-frames:v", "1",
            "-pix_fmt", "yuvj420p", "-q:v", "4", "-sn", *seek, "-vcodec", "mjpeg", "pipe:1",
            "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y"]


def test_cover_from_the_attached_picture():
    info = MediaInfo(duration=60.0, audio=AAC.audio, video=0, picture=2)
    assert args.cover(TOOLS, PIPE, options(), info) == [cover_argv(PIPE, 2)]


def test_cover_from_a_frame_at_ten_percent_key_frames_first():
    info = MediaInfo(duration=60.0, audio=AAC.audio, video=0)
    assert args.cover(TOOLS, PIPE, options(), info) == [
        cover_argv(PIPE, 0, ("-ss", "6.0"), keyframes=True), cover_argv(PIPE, 0, ("-ss", "6.0"))]


def test_the_encoding_run_decodes_no_video():
    """The cover frame comes from a process beside it (args.cover, fed the same input): as a
    second output of this run ffmpeg would decode every key frame to the end of the video."""
    info = MediaInfo(duration=60.0, audio=AAC.audio, video=0, picture=2)
    argv = args.encode(TOOLS, PIPE, "/tmp/o.mp3", options(), info, None)
    assert argv == encode(info=info)
    assert "-skip_frame:v" not in argv and "-filter_complex" not in argv and "mjpeg" not in argv


def test_cover_option_picks_a_time_or_none():
    info = MediaInfo(duration=60.0, audio=AAC.audio, video=1, picture=2)
    assert args.cover(TOOLS, "/tmp/f", options(cover="0:12.5"), info) == [
        cover_argv("/tmp/f", 1, ("-ss", "12.5"), keyframes=True),
        cover_argv("/tmp/f", 1, ("-ss", "12.5"))]
    assert args.cover(TOOLS, PIPE, options(cover="none"), info) == []
    assert args.cover(TOOLS, PIPE, options(cover="61"), info) == []  # after the end
    assert args.cover(TOOLS, PIPE, options(), MediaInfo(audio=AAC.audio)) == []  # audio only


def test_chapters_and_tags_never_reach_the_command_line():
    """mutagen writes them after ffmpeg: ffmpeg copies none, and no upload text is in argv."""
    info = MediaInfo(duration=6.0, audio=AAC.audio, video=0, tags={"title": "Mine\r\n-i x"},
                     chapters=[(0.0, 3.0, "One -map 0"), (3.0, 6.0, "Two")])
    argv = encode(info=info, start=1, end=5)
    assert argv == HEAD + mp3_out(q="4", ss="1.0", t="4.0") + TAIL
    assert not [arg for arg in argv if "One" in arg or "Mine" in arg]


@pytest.mark.parametrize("path, protocol", [("/tmp/o.mp3", "file"), (PIPE, "pipe")])
def test_probe(path, protocol):
    assert args.probe(TOOLS, path) == [
        "/usr/bin/ffprobe", "-v", "error", "-format_whitelist", "mp3", "-protocol_whitelist",
        protocol, "-show_format", "-show_streams", "-show_chapters", "-of", "json", path]
    assert args.probe(TOOLS, path, FORMAT_WHITELIST)[4] == FORMAT_WHITELIST
