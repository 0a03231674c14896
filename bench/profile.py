#!/usr/bin/env python3
"""Where one conversion's time goes: each step of Encoder.convert (probe, loudness measure, encode,
MP3 re-probe, cover) and what follows ffmpeg (the tag put in front, and with --mongo-uri the
chunks of the MP3 not stored while ffmpeg wrote it), against raw ffmpeg on the same file.

    .venv/bin/python bench/profile.py VIDEO [VIDEO ...] [--options '{"normalize": true}']
        [--mongo-uri mongodb://127.0.0.1:PORT/]

Steps are timed by wrapping the Supervisor (each ffmpeg/ffprobe child) and the output's finish.
With --mongo-uri the upload is stored into GridFS first and read from there, and the MP3 goes into
GridFS while it is encoded, as in the converter (services/converter/output.StoredMp3); without it
the upload is read from the local file through the StoredFile interface (bench/options.LocalStored)
and the tag is put in front of a local MP3.
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

eventlet.monkey_patch()  # before pymongo is imported (by the services' modules): it keeps select.poll
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.options import LocalStored  # noqa: E402
from services.converter import output  # noqa: E402
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
    run = process.Supervisor.run
    finishes = {kind: kind.finish for kind in (output.LocalMp3, output.StoredMp3)}

    def timed_run(self, argv, *args, **kwargs):
        started = time.monotonic()
        try:
            return run(self, argv, *args, **kwargs)
        finally:
            step = step_of(argv) + (" (with the cover beside)" if kwargs.get("beside") else "")
            times[step] += time.monotonic() - started

    def timed(kind):
        def finish(self, tag):
            started = time.monotonic()
            try:
                return finishes[kind](self, tag)
            finally:
                times["after ffmpeg: tag" + (", rest stored" if kind is output.StoredMp3 else "")] \
                    += time.monotonic() - started
        return finish
    process.Supervisor.run = timed_run
    for kind in finishes:
        kind.finish = timed(kind)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as directory:
            target = os.path.join(directory, "out.mp3")
            encoder = encoder_module.Encoder(tmp_dir=directory, timeout=3600)
            files = gridfs(mongo_uri) if mongo_uri else None
            mp3 = output.StoredMp3(lambda: files.place("mp3s", "out.mp3", {}, output.CHUNK_SIZE), target) \
                if files else None
            upload = stored_upload(files, video) if files else None
            started, cpu = time.monotonic(), children_cpu()
            with (files.open("videos", upload) if files else LocalStored(video)) as stored:
                encoder.convert(stored, target, options, output=mp3)
            if mp3 is not None:
                mp3.commit()
            times["convert"] = time.monotonic() - started
            times["convert cpu"] = children_cpu() - cpu
            if files:
                mp3.abort()
                files.delete("videos", upload)
            started, cpu = time.monotonic(), children_cpu()
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", video, "-vn", "-c:a", "libmp3lame",
                            "-q:a", "2", os.path.join(directory, "raw.mp3")], check=True)
            times["raw ffmpeg"] = time.monotonic() - started
            times["raw cpu"] = children_cpu() - cpu
    finally:
        process.Supervisor.run = run
        for kind, finish in finishes.items():
            kind.finish = finish
    return dict(times)


def children_cpu():
    """CPU seconds (user + system) of the finished child processes: steadier than wall time on a
    shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stored_upload(files, video):
    """The video stored in GridFS as an upload is: its file id."""
    upload = files.create("videos", os.path.basename(video), {})
    with open(video, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            upload.write(block)
    upload.commit()
    return upload.file_id


def gridfs(mongo_uri):
    import pymongo

    from services.storage.files import FileStore
    return FileStore(pymongo.MongoClient(mongo_uri)["bench_profile"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--options", default="{}")
    parser.add_argument("--mongo-uri")
    args = parser.parse_args(argv)
    for video in args.videos:
        times = profile(video, json.loads(args.options), args.mongo_uri)
        print("%s %s: %s" % (os.path.basename(video), args.options,
                             ", ".join("%s=%.3fs" % item for item in times.items())))


if __name__ == "__main__":
    main()
