"""Encoder.convert with the conversion options, on media ffmpeg makes here (tags, three chapters, an
attached picture, a loud track and a silent one), checked with ffprobe, ebur128 and mutagen."""
import os
import subprocess
import time

import pytest
from mutagen.id3 import ID3
from mutagen.mp3 import MP3, BitrateMode
from pymongo.errors import AutoReconnect

from services.common.options import parse_options
from services.converter.exceptions import ConversionError, TransientError
from services.converter.media.boxes import needs_seeking
from services.converter.media.encoder import Encoder
from services.converter.media import feed, process
from services.converter.media.feed import PIPE_BLOCK
from services.converter.media.process import Supervisor
from tests import media as m
from tests.helpers import FFPROBE, wait_until

BIDI = "\u202eevil\u202c\u2066x\u2069"
HOSTILE_TITLE = "Line one\r\nX-Injected: yes\x07\x1b" + BIDI + "A" * 100_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("media-options")
    return {
        "rich": m.make(directory, "rich.mp4"),
        "plain": m.make(directory, "plain.mkv", duration=4.0, tags={}, chapters=[], picture=False,
                        second_track=False),
        "moov_last": m.make(directory, "moov-last.mp4", faststart=False, picture=False),
        "hostile": m.make(directory, "hostile.mkv", duration=3.0, picture=False, second_track=False,
                          tags={"title": HOSTILE_TITLE, "artist": "Bad\nArtist" + BIDI,
                                "album": "\x1b[31mred\x1b[0m"},
                          chapters=[(0.0, 1.5, "Ch\r\none" + BIDI), (1.5, 3.0, "B" * 5000)]),
        "mp3": m.mp3_input(directory),
        "big": m.make(directory, "big.mp4", duration=10.0, size="640x360", tags={}, chapters=[],
                      picture=False, second_track=False, noise=True),
    }


@pytest.fixture
def encoder(tmp_path):
    return Encoder(tmp_dir=str(tmp_path), timeout=60)


def convert(encoder, path, tmp_path, fields=None, **kwargs):
    """Converts `path` with the options parsed from string `fields`, as the gateway stores them."""
    target = str(tmp_path / "out.mp3")
    result = encoder.convert(m.LocalStored(path), target, parse_options(fields or {}), **kwargs)
    return result, target


class HeldBack(m.LocalStored):
    """Fed its first block (at most all but 64 KiB) and the rest only once `until()` is true."""

    def __init__(self, path, until):
        super().__init__(path)
        self.until = until

    def iter_range(self, start=0, end=None, block=PIPE_BLOCK):
        data = b"".join(super().iter_range(start, end))
        first = min(block, max(0, len(data) - 65536))
        yield data[:first]
        wait_until(self.until, 30, message="the cover process started")
        for offset in range(first, len(data), block):
            yield data[offset:offset + block]


def audio_stream(path):
    return [s for s in m.streams(path)["streams"] if s["codec_type"] == "audio"][0]


def chapters_ms(tag):
    return sorted((frame.start_time, frame.end_time, str(frame.sub_frames["TIT2"]))
                  for frame in tag.getall("CHAP"))


def jpeg_size(tmp_path, data):
    path = tmp_path / "cover.jpg"
    path.write_bytes(data)
    out = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "stream=codec_name,width,height",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True).stdout.strip()
    codec, width, height = out.split(",")
    return codec, int(width), int(height)


def test_default_vbr_with_tags_chapters_and_the_attached_picture(files, encoder, tmp_path):
    result, target = convert(encoder, files["rich"], tmp_path)
    mp3 = MP3(target)
    assert mp3.info.bitrate_mode == BitrateMode.VBR
    assert mp3.info.sample_rate == 44100 and mp3.info.channels == 1  # the source's
    assert abs(result.duration - 6.0) <= 0.05 and abs(m.decoded_duration(target) - 6.0) <= 0.05
    assert result.size == os.path.getsize(target)
    assert result.passthrough is False
    tag = ID3(target)
    assert tag.version == (2, 3, 0)
    assert str(tag["TIT2"]) == "Clip Title" and str(tag["TPE1"]) == "Some Artist"
    assert str(tag["TALB"]) == "The Album" and str(tag["TCON"]) == "Test"
    assert str(tag["TDRC"]) == "2024"
    with open(target, "rb") as handle:
        head = handle.read(ID3(target).size)
    assert head[:4] == b"ID3\x03" and b"TYER" in head and b"TDRC" not in head  # v2.3's year frame
    assert tag.getall("COMM")[0].text == ["hello"]
    assert chapters_ms(tag) == [(0, 2000, "One"), (2000, 4000, "Two"), (4000, 6000, "Three")]
    toc = tag.getall("CTOC")[0]
    assert toc.child_element_ids == [f.element_id for f in sorted(tag.getall("CHAP"),
                                                                  key=lambda f: f.start_time)]
    pictures = tag.getall("APIC")
    assert len(pictures) == 1 and pictures[0].mime == "image/jpeg"
    assert jpeg_size(tmp_path, pictures[0].data) == ("mjpeg", 600, 467)  # the 900x700 picture, scaled


@pytest.mark.parametrize("bitrate", ["64", "128", "320"])
def test_constant_bitrate(files, encoder, tmp_path, bitrate):
    result, target = convert(encoder, files["rich"], tmp_path, {"bitrate": bitrate})
    info = MP3(target).info
    assert info.bitrate_mode == BitrateMode.CBR
    assert abs(info.bitrate - int(bitrate) * 1000) < 1000


def test_vbr_quality_changes_the_size(files, encoder, tmp_path):
    sizes = {}
    for quality in ("0", "9"):
        result, target = convert(encoder, files["rich"], tmp_path, {"quality": quality})
        assert MP3(target).info.bitrate_mode == BitrateMode.VBR
        sizes[quality] = result.size
    assert sizes["0"] > sizes["9"] * 1.5


def test_sample_rate_and_channels(files, encoder, tmp_path):
    _, target = convert(encoder, files["rich"], tmp_path, {"sample_rate": "22050", "channels": "2"})
    stream = audio_stream(target)
    assert int(stream["sample_rate"]) == 22050 and stream["channels"] == 2


@pytest.mark.parametrize("start, end, expected", [
    ("1.5", "4.25", 2.75), ("00:01.500", "0:00:04.250", 2.75), ("2.02", "", 3.98), ("", "3.3", 3.3),
])
def test_trim_is_accurate_and_moves_the_chapters(files, encoder, tmp_path, start, end, expected):
    result, target = convert(encoder, files["rich"], tmp_path, {"start": start, "end": end})
    assert abs(m.decoded_duration(target) - expected) <= 0.05
    assert abs(result.duration - expected) <= 0.05
    begin = float(start.split(":")[-1]) if start else 0.0
    stop = begin + expected
    kept = [(round((max(s, begin) - begin) * 1000), round((min(e, stop) - begin) * 1000), t)
            for s, e, t in m.CHAPTERS if s < stop and e > begin]
    assert [(s, e, t) for s, e, t in chapters_ms(ID3(target))] == sorted(kept)


def test_audio_track_chooses_the_stream(files, encoder, tmp_path):
    _, first = convert(encoder, files["rich"], tmp_path, {})
    assert m.loudness(first) > -12  # the loud sine
    _, second = convert(encoder, files["rich"], tmp_path, {"audio_track": "1"})
    stream = audio_stream(second)
    assert int(stream["sample_rate"]) == 48000 and stream["channels"] == 2
    assert m.loudness(second) <= -69  # the silent track


def test_missing_audio_track_is_the_users_fault(files, encoder, tmp_path):
    with pytest.raises(ConversionError) as info:
        convert(encoder, files["rich"], tmp_path, {"audio_track": "2"})
    assert "audio_track 2" in info.value.args[0] and "2 audio track" in info.value.args[0]


def test_normalize_reaches_minus_16_lufs(files, encoder, tmp_path):
    assert m.loudness(files["rich"]) > -10  # loud to begin with
    result, target = convert(encoder, files["rich"], tmp_path, {"normalize": "true"})
    assert abs(m.loudness(target) - (-16)) <= 1.0
    assert result.normalized == "linear"


def test_normalize_of_silence_leaves_it_silent(files, encoder, tmp_path):
    _, target = convert(encoder, files["rich"], tmp_path, {"normalize": "true", "audio_track": "1"})
    assert m.loudness(target) <= -69


def test_overrides_replace_the_uploads_tags(files, encoder, tmp_path):
    _, target = convert(encoder, files["rich"], tmp_path,
                        {"title": "Mine", "artist": "Ünïcødé ✓", "album": "Other"})
    tag = ID3(target)
    assert (str(tag["TIT2"]), str(tag["TPE1"]), str(tag["TALB"])) == ("Mine", "Ünïcødé ✓", "Other")
    assert str(tag["TCON"]) == "Test"  # not overridden: from the upload


def test_tags_false_and_cover_none_write_no_tag_at_all(files, encoder, tmp_path):
    _, target = convert(encoder, files["rich"], tmp_path, {"tags": "false", "cover": "none"})
    with open(target, "rb") as handle:
        assert handle.read(3) != b"ID3"
    assert MP3(target).tags is None


def test_tags_false_keeps_the_cover_but_nothing_from_the_metadata(files, encoder, tmp_path):
    _, target = convert(encoder, files["rich"], tmp_path, {"tags": "false", "title": "Only this"})
    tag = ID3(target)
    assert sorted(tag.keys()) == ["APIC:Cover", "TIT2"]
    assert str(tag["TIT2"]) == "Only this"


def test_cover_none_keeps_the_tags(files, encoder, tmp_path):
    _, target = convert(encoder, files["rich"], tmp_path, {"cover": "none"})
    tag = ID3(target)
    assert not tag.getall("APIC") and str(tag["TIT2"]) == "Clip Title"


def test_cover_from_the_video_frame(files, encoder, tmp_path):
    # no attached picture: a frame at 10 % of the duration; or the frame at `cover` seconds
    for fields in ({}, {"cover": "3"}):
        _, target = convert(encoder, files["plain"], tmp_path, fields)
        pictures = ID3(target).getall("APIC")
        assert len(pictures) == 1 and pictures[0].data[:2] == b"\xff\xd8"
        assert jpeg_size(tmp_path, pictures[0].data) == ("mjpeg", 160, 120)
    # with an attached picture, `cover` seconds still takes the video's frame
    _, target = convert(encoder, files["rich"], tmp_path, {"cover": "00:03"})
    assert jpeg_size(tmp_path, ID3(target).getall("APIC")[0].data) == ("mjpeg", 160, 120)


def test_moov_at_the_end_is_spooled_and_gets_its_options(files, encoder, tmp_path):
    fields = {"start": "1", "end": "3", "bitrate": "96"}
    result, target = convert(encoder, files["moov_last"], tmp_path, fields)
    assert abs(m.decoded_duration(target) - 2.0) <= 0.05
    assert MP3(target).info.bitrate_mode == BitrateMode.CBR
    assert chapters_ms(ID3(target)) == [(0, 1000, "One"), (1000, 2000, "Two")]
    assert sorted(os.listdir(tmp_path)) == ["out.mp3"]  # the spool is gone


@pytest.mark.parametrize("name, piped", [("moov_last", False), ("big", True)])
def test_the_upload_is_looked_at_once_ffmpeg_started(
        files, encoder, tmp_path, monkeypatch, name, piped):
    """ffmpeg and the probe start before the upload's first byte is read (they load for ~60 ms
    while its head is read); an MP4 whose moov comes last is then fed nothing: those processes
    are killed and it converts from a spooled file."""
    events, started, write = [], process._Child.__init__, feed._write

    class Watched(m.LocalStored):
        def read(self, size=-1):
            events.append("read")
            return super().read(size)

    def child(self, argv, *args, **kwargs):
        events.append(("started", argv[argv.index("-i") + 1] if "-i" in argv else argv[-1]))
        started(self, argv, *args, **kwargs)

    def fed(pipe, block):
        events.append("fed")
        return write(pipe, block)

    monkeypatch.setattr(process._Child, "__init__", child)
    monkeypatch.setattr(feed, "_write", fed)
    target = str(tmp_path / "out.mp3")
    result = encoder.convert(Watched(files[name]), target, parse_options({"cover": "none"}))
    assert events[:3] == [("started", "pipe:0"), ("started", "pipe:0"), "read"]
    starts = [event for event in events if isinstance(event, tuple)]
    if piped:
        assert starts == [("started", "pipe:0")] * 2 and "fed" in events
    else:   # nothing fed to the pipe's processes; the spooled file's processes do the work
        assert ("started", "pipe:0") not in starts[2:]
        assert "fed" not in events[:events.index(starts[2])]
    assert abs(result.duration - m.decoded_duration(target)) <= 0.1


def test_hostile_metadata_is_harmless(files, encoder, tmp_path, monkeypatch):
    argvs = []
    real_run = Supervisor.run

    def recording_run(self, argv, *args, **kwargs):
        argvs.append(argv)
        return real_run(self, argv, *args, **kwargs)
    monkeypatch.setattr(Supervisor, "run", recording_run)
    _, target = convert(encoder, files["hostile"], tmp_path)
    tag = ID3(target)
    texts = [str(tag["TIT2"]), str(tag["TPE1"]), str(tag["TALB"])] + \
        [str(f.sub_frames["TIT2"]) for f in tag.getall("CHAP")]
    for text in texts:
        assert len(text) <= 256
        assert not any(ord(ch) < 32 or 0x7f <= ord(ch) <= 0x9f for ch in text), repr(text)
        assert not set(text) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert str(tag["TIT2"]).startswith("Line one X-Injected: yes")
    assert str(tag["TPE1"]) == "Bad Artist evil x"
    assert len(tag.getall("CHAP")) == 2
    assert os.path.getsize(target) < 200_000  # no 100 KB title carried over
    words = ("Injected", "evil", "Artist", "AAAA", "[31m")
    assert argvs and not [arg for argv in argvs for arg in argv if any(w in arg for w in words)]


def test_progress_rises_to_one(files, tmp_path):
    encoder = Encoder(tmp_dir=str(tmp_path), progress_period=0.02)
    seen = []
    convert(encoder, files["big"], tmp_path, {"normalize": "true"}, on_progress=seen.append)
    assert len(seen) >= 3 and seen[-1] == 1.0
    assert all(0 < a < b for a, b in zip(seen, seen[1:])), seen
    assert any(0.5 < value < 1.0 for value in seen), seen  # live during the encoding pass


def test_passthrough_copies_mp3_audio_and_still_tags(files, encoder, tmp_path):
    source = MP3(files["mp3"]).info
    result, target = convert(encoder, files["mp3"], tmp_path, {"artist": "Me"})
    assert result.passthrough is True
    info = MP3(target).info
    assert info.bitrate_mode == BitrateMode.CBR and abs(info.bitrate - source.bitrate) < 1000
    tag = ID3(target)
    assert (str(tag["TIT2"]), str(tag["TPE1"])) == ("Song", "Me")
    result, target = convert(encoder, files["mp3"], tmp_path, {"quality": "5"})
    assert result.passthrough is False and MP3(target).info.bitrate_mode == BitrateMode.VBR


def test_too_long_media_is_refused_from_the_probe(files, tmp_path, monkeypatch):
    ran = []
    real_run = Supervisor.run
    monkeypatch.setattr(Supervisor, "run", lambda self, argv, *a, **k: ran.append(
        (argv[0], (k.get("beside") or [None])[0])) or real_run(self, argv, *a, **k))
    encoder = Encoder(tmp_dir=str(tmp_path), max_duration=5)
    started = time.monotonic()
    with pytest.raises(ConversionError) as info:
        convert(encoder, files["rich"], tmp_path)
    assert "longer than the limit" in info.value.args[0]
    # the encoding the probe ran beside (killed on its answer: tests/unit/.../test_process.py)
    assert ran == [(encoder.tools.ffmpeg, encoder.tools.ffprobe)]
    assert time.monotonic() - started < 5


def test_a_probe_beside_that_may_not_have_read_enough_is_run_again_on_its_own(
        files, tmp_path, monkeypatch):
    """A probe beside that falls behind is fed no more, one still running after the encoding is
    killed: its answer may be partial (ffprobe exits 0 at the end of what it got), so it is not
    trusted, and the probe runs on its own before encoding again. Here the first ffprobe reads
    nothing and is cut (the upload is 11 blocks), the second is the real one."""
    first = tmp_path / "probed-once"
    stalling = tmp_path / "ffprobe"
    stalling.write_text("#!/bin/sh\nif [ ! -e '%s' ]; then touch '%s'; exec sleep 300; fi\n"
                        "exec %s \"$@\"\n" % (first, first, FFPROBE))
    stalling.chmod(0o755)
    ran, run = [], Supervisor.run
    monkeypatch.setattr(Supervisor, "run", lambda self, argv, *a, **k: ran.append(
        (os.path.basename(argv[0]), os.path.basename((k.get("beside") or [""])[0]))) or run(
        self, argv, *a, **k))
    encoder = Encoder(tmp_dir=str(tmp_path), ffprobe_bin=str(stalling))
    result, target = convert(encoder, files["big"], tmp_path, {"title": "T", "cover": "0"})
    assert ran == [("ffmpeg", "ffprobe"), ("ffprobe", ""), ("ffmpeg", "ffmpeg")]
    assert str(ID3(target)["TIT2"]) == "T" and len(ID3(target).getall("APIC")) == 1
    assert abs(result.duration - 10.0) < 0.1


def test_storage_error_mid_feed_is_transient_and_immediate(files, tmp_path):
    """Issue 8: AutoReconnect from GridFS while piping used to leave ffmpeg waiting on its stdin
    until CONVERT_TIMEOUT, then fail the job for good as the user's fault."""
    assert os.path.getsize(files["big"]) > 2 * PIPE_BLOCK
    stored = m.LocalStored(files["big"], fail_after=1, error=AutoReconnect("connection reset"))
    assert not needs_seeking(stored)  # faststart: piped
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        Encoder(timeout=15, tmp_dir=str(tmp_path)).convert(stored, str(tmp_path / "out.mp3"))
    assert time.monotonic() - started < 3
    assert "connection reset" in info.value.args[0]
    assert isinstance(info.value.__cause__, AutoReconnect)


def test_trim_starting_after_the_end_is_the_users_fault(files, encoder, tmp_path):
    with pytest.raises(ConversionError) as info:
        convert(encoder, files["rich"], tmp_path, {"start": "7"})
    assert "after the end of the media" in info.value.args[0]


@pytest.mark.parametrize("name, fields", [("rich", {}), ("big", {"cover": "0"})])
def test_one_ffmpeg_run_reads_the_audio_with_the_probe_and_then_the_cover_beside(
        files, encoder, tmp_path, monkeypatch, name, fields):
    """The probe runs beside the encoding (on the arguments it confirms), the cover process (the
    attached picture, or a frame at 10 %) starts beside it once the probe told where the picture
    is, fed what was read so far again, and the duration comes from the encoding's progress: the
    upload is read once and the MP3 not at all."""
    argvs, run, started = [], Supervisor.run, process._Child.__init__
    monkeypatch.setattr(Supervisor, "run", lambda self, argv, *a, **k: argvs.append(
        (argv, k.get("beside"))) or run(self, argv, *a, **k))
    children = []
    monkeypatch.setattr(process._Child, "__init__", lambda self, argv, *a, **k: children.append(
        os.path.basename(argv[0])) or started(self, argv, *a, **k))
    # a test file is encoded as fast as it is probed: the encoding is held after its first block
    # until the cover process started (an encoding done first makes the cover a pass of its own,
    # and one that read more than feed.SIDE_BACKLOG blocks cannot give the cover its start)
    stored = HeldBack(files[name], lambda: len(children) == 3)
    result = encoder.convert(stored, str(tmp_path / "out.mp3"), parse_options(fields))
    target = str(tmp_path / "out.mp3")
    assert [(os.path.basename(argv[0]), os.path.basename(beside[0])) for argv, beside in argvs] \
        == [("ffmpeg", "ffprobe")]
    assert children == ["ffmpeg", "ffprobe", "ffmpeg"]  # the cover's, started on the probe's answer
    assert len(ID3(target).getall("APIC")) == 1 and result.duration > 0


def test_an_encoding_the_probe_overrules_starts_again_with_its_arguments(
        files, encoder, tmp_path, monkeypatch):
    """MP3 audio is copied, where the encoding beside the probe re-encoded it: the probe's answer
    stops it and the copy runs, with the probe's facts (no second probe)."""
    argvs, run = [], Supervisor.run
    monkeypatch.setattr(Supervisor, "run", lambda self, argv, *a, **k: argvs.append(argv) or run(
        self, argv, *a, **k))
    result, target = convert(encoder, files["mp3"], tmp_path)
    assert [os.path.basename(argv[0]) for argv in argvs] == ["ffmpeg", "ffmpeg"]
    assert "libmp3lame" in argvs[0] and "copy" in argvs[1]
    assert result.passthrough is True and MP3(target).info.bitrate_mode == BitrateMode.CBR


def test_no_key_frame_after_the_cover_time_falls_back_to_any_frame(files, encoder, tmp_path):
    result, target = convert(encoder, files["big"], tmp_path, {"cover": "9.9"})
    assert jpeg_size(tmp_path, ID3(target).getall("APIC")[0].data)[0] == "mjpeg"


def test_normalize_measures_once_at_the_audio_rate_and_goes_dynamic_only_when_one_gain_would_clip(
        encoder, tmp_path, monkeypatch):
    """A quiet tone with loud clicks: one gain up to -16 LUFS would clip, so loudnorm's own
    measuring pass and dynamic mode follow ebur128's; a plain loud file takes ebur128 + one gain."""
    from tests.helpers import FFMPEG
    clicks = tmp_path / "clicks.m4a"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "aevalsrc=0.01*sin(2*PI*440*t)+if(lt(mod(t\\,1)\\,0.002)\\,0.9\\,0):s=44100:d=6",
                    "-c:a", "aac", str(clicks)], check=True)
    filters, run = [], Supervisor.run

    def recording_run(self, argv, *args, **kwargs):
        if os.path.basename(argv[0]) != "ffprobe":  # the passes after the probe
            filters.append(" ".join(argv))
        return run(self, argv, *args, **kwargs)
    monkeypatch.setattr(Supervisor, "run", recording_run)
    before = m.loudness(clicks)
    result, target = convert(encoder, str(clicks), tmp_path, {"normalize": "true"})
    assert result.normalized == "dynamic"
    assert ["ebur128" in f for f in filters] == [True, False, False]
    assert ["loudnorm" in f for f in filters] == [False, True, True]
    assert m.loudness(target) > before + 3  # louder, clicks limited
