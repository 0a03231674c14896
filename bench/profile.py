#!/usr/bin/env python3
"""Where one conversion's time goes: each step of Encoder.convert (probe, loudness measure, encode,
MP3 re-probe, cover, ID3 tag write) and the GridFS store, against raw ffmpeg on the same file.

    .venv/bin/python bench/profile.py VIDEO [VIDEO ...] [--options '{"normalize": true}']
        [--mongo-uri mongodb://127.0.0.1:PORT/]

Steps are timed by wrapping the Supervisor (each ffmpeg/ffprobe child) and the tag writer; the
upload is read from a local file through the StoredFile interface (bench/options.LocalStored).
Without --mongo-uri the GridFS store is not timed.
"""
import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import eventlet

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.options import LocalStored  # noqa: E402
from services.converter import tags as id3  # noqa: E402
from services.converter.media import encoder as encoder_module, process  # noqa: E402


def step_of(argv):
    """A name for the step an argv is."""
    text = " ".join(argv)
    if os.path.basename(argv[0]).startswith("ffprobe"):
        return "probe mp3" if argv[-1].endswith(".mp3") else "probe"
    if "-f mp3" in text:
        return "encode"
    if "mjpeg" in text:
        return "cover"
    if "-f null" in text or "null" in argv and "loudnorm" in text:
        return "measure"
    return "encode"


def profile(video, options, mongo_uri=None):
    """{step: seconds} of one conversion of `video`, "total" and "raw ffmpeg" included."""
    times = collections.defaultdict(float)
    run, write = process.Supervisor.run, id3.write

    def timed_run(self, argv, *args, **kwargs):
        started = time.monotonic()
        try:
            return run(self, argv, *args, **kwargs)
        finally:
            step = step_of(argv) + (" (with the cover beside)" if kwargs.get("beside") else "")
            times[step] += time.monotonic() - started

    def timed_write(*args, **kwargs):
        started = time.monotonic()
        try:
            return write(*args, **kwargs)
        finally:
            times["tag write"] += time.monotonic() - started
    process.Supervisor.run, id3.write = timed_run, timed_write
    try:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as directory:
            target = os.path.join(directory, "out.mp3")
            encoder = encoder_module.Encoder(tmp_dir=directory, timeout=3600)
            started, cpu = time.monotonic(), children_cpu()
            with LocalStored(video) as stored:
                encoder.convert(stored, target, options)
            times["convert"] = time.monotonic() - started
            times["convert cpu"] = children_cpu() - cpu
            if mongo_uri:
                times["gridfs store"] = store(mongo_uri, target)
            started, cpu = time.monotonic(), children_cpu()
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", video, "-vn", "-c:a", "libmp3lame",
                            "-q:a", "2", os.path.join(directory, "raw.mp3")], check=True)
            times["raw ffmpeg"] = time.monotonic() - started
            times["raw cpu"] = children_cpu() - cpu
    finally:
        process.Supervisor.run, id3.write = run, write
    return dict(times)


def children_cpu():
    """CPU seconds (user + system) of the finished child processes: steadier than wall time on a
    shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def store(mongo_uri, path):
    import pymongo

    from services.storage.files import FileStore
    files = FileStore(pymongo.MongoClient(mongo_uri)["bench_profile"])
    started = time.monotonic()
    upload = files.create("mp3s", "out.mp3", {})
    with open(path, "rb") as mp3:
        for block in iter(lambda: mp3.read(1 << 20), b""):
            upload.write(block)
    upload.commit()
    seconds = time.monotonic() - started
    files.delete("mp3s", upload.file_id)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--options", default="{}")
    parser.add_argument("--mongo-uri")
    args = parser.parse_args(argv)
    for video in args.videos:
        times = profile(video, json.loads(args.options), args.mongo_uri)
        print("%s %s: %s" % (os.path.basename(video), args.options,
                             ", ".join("%s=%.2fs" % item for item in times.items())))


if __name__ == "__main__":
    eventlet.monkey_patch()
    main()
