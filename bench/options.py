#!/usr/bin/env python3
"""What each conversion option costs: Encoder.convert timed per option on one video, as a ratio to
the default conversion, and the MP3 passthrough's speed-up over re-encoding the same MP3 audio.

    .venv/bin/python bench/options.py VIDEO [--runs 3]

`option_table(video, encoder)` returns the rows for `make bench` (the 10-minute video); the upload
is read from a local file through the StoredFile interface, so this measures ffmpeg and the
encoder's passes only (no GridFS, no broker).
"""
import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

import eventlet

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from services.converter.media.encoder import Encoder  # noqa: E402

# (label, options as the gateway stores them); the first row is the baseline
CASES = [
    ("default (VBR q2, tags, cover auto)", {}),
    ("quality=0", {"quality": 0}),
    ("quality=9", {"quality": 9}),
    ("bitrate=128 (CBR)", {"bitrate": 128}),
    ("bitrate=320 (CBR)", {"bitrate": 320}),
    ("sample_rate=22050", {"sample_rate": 22050}),
    ("channels=1", {"channels": 1}),
    ("start=10, end=40 (trim)", {"start": 10.0, "end": 40.0}),
    ("normalize=true (two passes)", {"normalize": True}),
    ("tags=false, cover=none", {"tags": False, "cover": "none"}),
    ("cover=none", {"cover": "none"}),
]


class LocalStored(io.FileIO):
    """The StoredFile interface (read/seek/tell/iter_range/length) over a local file."""

    def __init__(self, path):
        super().__init__(path, "rb")
        self.length = os.path.getsize(path)

    def iter_range(self, start=0, end=None, block=1 << 20):
        end = self.length if end is None else min(end, self.length)
        self.seek(start)
        while self.tell() < end:
            yield self.read(min(block, end - self.tell()))


def timed(encoder, path, options, runs):
    """Median seconds of `runs` conversions, and the last Result."""
    seconds, result = [], None
    with tempfile.TemporaryDirectory(prefix="bench-options-") as directory:
        for _ in range(runs):
            with LocalStored(path) as stored:
                started = time.monotonic()
                result = encoder.convert(stored, os.path.join(directory, "out.mp3"), options)
                seconds.append(time.monotonic() - started)
    return statistics.median(seconds), result


def mp3_audio_copy(video, directory, ffmpeg="ffmpeg"):
    """The video with its audio re-encoded once to MP3 (video copied): a passthrough candidate."""
    path = os.path.join(directory, "mp3-audio.mkv")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", video, "-map", "0:v:0?", "-map", "0:a:0",
                    "-c:v", "copy", "-c:a", "libmp3lame", "-q:a", "2", path], check=True)
    return path


def option_table(video, encoder, runs=1):
    """Rows (label, seconds, ratio to the default) for each option, then the passthrough rows."""
    rows = []
    base, _ = timed(encoder, video, CASES[0][1], runs)
    for label, options in CASES:
        seconds = base if not options else timed(encoder, video, options, runs)[0]
        rows.append((label, seconds, seconds / base))
    with tempfile.TemporaryDirectory(prefix="bench-passthrough-") as directory:
        source = mp3_audio_copy(video, directory, encoder.ffmpeg_bin)
        copied, result = timed(encoder, source, {}, runs)
        assert result.passthrough, "expected the MP3 audio to be copied"
        encoded, _ = timed(encoder, source, {"quality": encoder.quality}, runs)
    rows.append(("MP3 upload, re-encoded (quality set)", encoded, encoded / base))
    rows.append(("MP3 upload, passthrough (copy)", copied, copied / base))
    rows.append(("passthrough speed-up", encoded / copied, None))
    return rows


def markdown(rows, video):
    lines = ["Conversion options on %s (Encoder.convert, median of runs):" % os.path.basename(video), "",
             "| option | seconds | ratio to default |", "|---|---:|---:|"]
    for label, seconds, ratio in rows:
        if ratio is None:
            lines.append("| %s | **%.1fx** | |" % (label, seconds))
        else:
            lines.append("| %s | %.2f | %.2f |" % (label, seconds, ratio))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    encoder = Encoder(tmp_dir=tempfile.gettempdir(), timeout=3600)
    print(markdown(option_table(args.video, encoder, args.runs), args.video))


if __name__ == "__main__":
    eventlet.monkey_patch()
    main()
