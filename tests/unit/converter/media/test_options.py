"""The option-dependent parts of the media layer without running ffmpeg: argv built from options,
loudnorm's JSON, chapter shifting, tag picking and cleaning."""
import io

import pytest
from mutagen.id3 import ID3

from services.common.options import ConversionOptions, parse_options
from services.converter import tags
from services.converter.media.args import FORMAT_WHITELIST, Tools, encode, loudnorm_mode, nearest_rate
from services.converter.media.encoder import expected_span
from services.converter.media.loudness import parse_ebur128, parse_loudnorm
from services.converter.media.probe import MediaInfo

AAC = MediaInfo(duration=60.0, audio=[{"codec": "aac", "sample_rate": 44100, "channels": 2}])
MP3_6CH = MediaInfo(duration=60.0, audio=[{"codec": "mp3", "sample_rate": 96000, "channels": 6}])


def argv_for(fields, info=AAC, loudness=None, quality=2):
    options = ConversionOptions.model_validate(parse_options(fields))
    return encode(Tools(quality=quality, max_duration=600), "pipe:0", "/tmp/o.mp3", options, info,
                  loudness)


def value(argv, flag):
    return argv[argv.index(flag) + 1]


def test_default_is_vbr_at_the_configured_quality_without_tags():
    argv = argv_for({}, quality=4)
    assert value(argv, "-q:a") == "4" and "-b:a" not in argv
    assert value(argv, "-acodec") == "libmp3lame"
    assert value(argv, "-id3v2_version") == "0" and value(argv, "-map_metadata") == "-1"
    assert "-ar" not in argv and "-ac" not in argv and "-ss" not in argv
    assert value(argv, "-progress") == "pipe:1"
    assert value(argv, "-format_whitelist") == FORMAT_WHITELIST


def test_bitrate_is_cbr_and_quality_overrides_the_default():
    argv = argv_for({"bitrate": "192"})
    assert value(argv, "-b:a") == "192k" and "-q:a" not in argv
    assert value(argv_for({"quality": "7"}), "-q:a") == "7"


def test_rate_channels_track_and_trim():
    argv = argv_for({"sample_rate": "22050", "channels": "1", "audio_track": "1", "start": "1:00",
                     "end": "90.5"}, info=MediaInfo(audio=[{}, {"codec": "aac"}]))
    assert value(argv, "-ar") == "22050" and value(argv, "-ac") == "1"
    assert value(argv, "-map") == "0:a:1"
    i = argv.index("-i")
    assert argv.index("-ss") > i and value(argv, "-ss") == "60.0"  # output side
    assert float(value(argv, "-t")) == 30.5


def test_many_channels_are_downmixed_and_odd_rates_resampled():
    argv = argv_for({"quality": "2"}, info=MP3_6CH)
    assert value(argv, "-ac") == "2" and value(argv, "-ar") == "48000"


def test_mp3_audio_is_copied_unless_an_option_changes_it():
    argv = argv_for({"title": "x", "cover": "none", "tags": "false"}, info=MP3_6CH)
    assert value(argv, "-acodec") == "copy" and "-q:a" not in argv and "-ar" not in argv
    for fields in ({"quality": "2"}, {"bitrate": "128"}, {"start": "1"}, {"end": "5"},
                   {"normalize": "true"}, {"channels": "2"}, {"sample_rate": "44100"}):
        assert value(argv_for(fields, info=MP3_6CH), "-acodec") == "libmp3lame", fields


MEASURED = {"input_i": -9.5, "input_tp": -3.0, "input_lra": 4.0, "input_thresh": -19.6,
            "target_offset": 0.2}


def test_normalize_second_pass_is_one_gain_when_loudnorm_would_be_linear():
    measured = dict(MEASURED)
    argv = argv_for({"normalize": "true"}, loudness=measured)
    graph = value(argv, "-filter_complex")
    assert graph == "[0:a:0]volume=volume=-6.50dB[s0]"  # at the audio's rate: no 192 kHz loudnorm
    assert value(argv, "-ar") == "44100"
    assert loudnorm_mode(measured) == "linear" and measured == MEASURED  # argv building is pure
    quiet = dict(MEASURED, input_i=-40.0, input_tp=-2.0)
    assert loudnorm_mode(quiet) == "dynamic"  # +24 dB would clip: loudnorm goes dynamic


LOUDNORM_STDERR = """[Parsed_loudnorm_0 @ 0x1]
{
\t"input_i" : "-22.71",
\t"input_tp" : "-18.58",
\t"input_lra" : "0.10",
\t"input_thresh" : "-32.71",
\t"output_i" : "-16.01",
\t"normalization_type" : "dynamic",
\t"target_offset" : "0.01"
}
"""


def test_parse_loudnorm():
    assert parse_loudnorm("noise\n" + LOUDNORM_STDERR) == {
        "input_i": -22.71, "input_tp": -18.58, "input_lra": 0.1, "input_thresh": -32.71,
        "target_offset": 0.01}
    assert parse_loudnorm(LOUDNORM_STDERR.replace('"-22.71"', '"-inf"')) is None  # silence
    assert parse_loudnorm("no json here") is None
    assert parse_loudnorm("{broken") is None


EBUR128_STDERR = """[Parsed_ebur128_0 @ 0x1] t: 0.1 TARGET:-23 LUFS    M: -120.7 S:-120.7
[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         -22.7 LUFS
    Threshold: -32.7 LUFS

  Loudness range:
    LRA:         0.1 LU
    Threshold: -42.7 LUFS
    LRA low:   -22.8 LUFS
    LRA high:  -22.6 LUFS

  True peak:
    Peak:      -18.6 dBFS
"""


def test_parse_ebur128():
    assert parse_ebur128("noise\n" + EBUR128_STDERR) == {
        "input_i": -22.7, "input_tp": -18.6, "input_lra": 0.1, "input_thresh": -32.7,
        "target_offset": 0.0}
    silent = EBUR128_STDERR.replace("-22.7 LUFS\n    Th", "-70.0 LUFS\n    Th").replace("-18.6", "-inf")
    assert parse_ebur128(silent) is None  # no finite peak
    assert parse_ebur128("no summary here") is None
    assert parse_ebur128(EBUR128_STDERR.replace("-22.7 LUFS", "x LUFS")) is None


@pytest.mark.parametrize("rate, nearest", [(44100, 44100), (96000, 48000), (44000, 44100),
                                           (7000, 8000), (None, None), (0, None)])
def test_nearest_rate(rate, nearest):
    assert nearest_rate(rate) == nearest


def test_expected_span():
    options = ConversionOptions.model_validate({"start": 10, "end": 40})
    assert expected_span(60.0, options) == 30.0
    assert expected_span(20.0, options) == 10.0
    assert expected_span(0.0, ConversionOptions()) == 0.0


def test_chapters_shifted_and_cut_by_the_trim():
    chapters = [(0.0, 2.0, "One"), (2.0, 4.0, "Two"), (4.0, 6.0, "Three")]
    assert tags.shift_chapters(chapters, 0.0, 6.0) == [(0, 2000, "One"), (2000, 4000, "Two"),
                                                       (4000, 6000, "Three")]
    assert tags.shift_chapters(chapters, 1.5, 2.75) == [(0, 500, "One"), (500, 2500, "Two"),
                                                        (2500, 2750, "Three")]
    assert tags.shift_chapters(chapters, 4.5, 1.0) == [(0, 1000, "Three")]
    assert tags.shift_chapters([(0.0, 1.0, "a\r\nb\u202e")], 0.0, 1.0) == [(0, 1000, "a b")]


def test_pick_tags_cleans_and_keeps_known_keys_once():
    picked = tags.pick_tags({"TITLE": "T\r\n1", "title": "second", "ARTIST": "x" * 5000,
                             "date": "2019-05-04T10:00:00Z", "encoder": "Lavf", "Genre": "\u202eg",
                             "comment": "\x00\x07", "DATE_RELEASED": "1999"})
    assert picked == {"title": "T 1", "artist": "x" * 256, "date": "2019-05-04", "genre": "g"}
    assert tags.pick_tags({"date": "yesterday"}) == {}


def test_frames_apply_overrides_and_no_tags_means_no_frames():
    options = ConversionOptions.model_validate(parse_options({"title": "Mine"}))
    frames = tags.frames_for({"title": "Theirs", "album": "A"}, [], options, None, 10.0)
    assert sorted((f.FrameID, str(f)) for f in frames) == [("TALB", "A"), ("TIT2", "Mine")]
    assert tags.frames_for({}, [], ConversionOptions(), None, 10.0) == []


def test_a_tag_is_rendered_at_its_size_or_padded_to_the_size_planned():
    options = ConversionOptions.model_validate(parse_options({"title": "Mine"}))
    frames = tags.frames_for({"album": "A"}, [(0.0, 2.0, "One"), (2.0, 9.0, "Two")], options,
                             b"\xff\xd8jpeg", 4.0)
    exact = tags.render(frames)
    assert exact.startswith(b"ID3\x03") and tags.render([]) == b""
    padded = tags.render(frames, size=len(exact) + 300)
    assert len(padded) == len(exact) + 300 and padded.endswith(b"\x00" * 300)
    assert tags.render(frames, size=10) == exact  # planned too small: the caller stores it again
    read = ID3(io.BytesIO(padded + b"\xff\xfb" * 4))
    assert str(read["TIT2"]) == "Mine" and str(read["TALB"]) == "A"
    assert [(f.start_time, f.end_time) for f in read.getall("CHAP")] == [(0, 2000), (2000, 4000)]
    assert read.getall("APIC")[0].data == b"\xff\xd8jpeg"
