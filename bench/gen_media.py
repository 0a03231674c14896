#!/usr/bin/env python3
"""Generate the benchmark's input videos into bench/media/ (cached between runs).

Every file is 1280x720, 25 fps H.264 (constant 2 Mbit/s, x264 ultrafast) with a 48 kHz
stereo AAC track (128 kbit/s; pink noise left, 440 Hz sine right, so the MP3 encoder gets
real work).  The MP4s are "faststart" (moov atom first), like most web uploads.

Only one 60-second segment is encoded; the 10- and 60-minute files are that segment looped
with stream copy (`-stream_loop N -c copy`), which costs disk I/O only; the 8-second clip (the
fairness part's short job) is the segment's first 8 seconds, stream copy too.  At 2.13 Mbit/s
the 60-minute file is ~0.96 GB and doubles as the "1 GB" memory test input (it stays
under the gateway's default MAX_UPLOAD_BYTES of 1 GiB).

All ffmpeg work runs under `nice -n 19` so it does not disturb other work on the machine.

Usage: python bench/gen_media.py [--out DIR] [--only NAME ...] [--ffmpeg PATH]
A file is reused when it exists and its sidecar <name>.json records the same recipe and
the same size; otherwise it is rebuilt.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "media")

WIDTH, HEIGHT, FPS = 1280, 720, 25
VIDEO_KBPS = 2000
AUDIO_KBPS = 128
SEGMENT_S = 60

# name -> duration in seconds (a whole number of segments)
MEDIA = {
    "clip-8s": 8,       # the short clip of the fairness part: the segment's first 8 s, stream copy
    "clip-1m": 60,
    "clip-10m": 600,
    "clip-60m": 3600,   # ~0.96 GB: also the "1 GB" memory test input
}


def segment_cmd(ffmpeg, out):
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"testsrc2=s={WIDTH}x{HEIGHT}:r={FPS}",
        "-f", "lavfi", "-i", "anoisesrc=c=pink:a=0.25:seed=1:r=48000",
        "-f", "lavfi", "-i", "sine=f=440:r=48000",
        "-filter_complex", "[1][2]amerge=inputs=2[a]",
        "-map", "0:v", "-map", "[a]", "-t", str(SEGMENT_S),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(2 * FPS),
        "-b:v", f"{VIDEO_KBPS}k", "-minrate", f"{VIDEO_KBPS}k", "-maxrate", f"{VIDEO_KBPS}k",
        "-bufsize", f"{VIDEO_KBPS // 2}k", "-x264-params", "nal-hrd=cbr",
        "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k",
        "-movflags", "+faststart", out,
    ]


def loop_cmd(ffmpeg, segment, loops, out):
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-stream_loop", str(loops - 1), "-i", segment,
        "-map", "0", "-c", "copy", "-movflags", "+faststart", out,
    ]


def trim_cmd(ffmpeg, segment, seconds, out):
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-i", segment, "-t", str(seconds),
        "-map", "0", "-c", "copy", "-movflags", "+faststart", out,
    ]


def recipe(name, seconds):
    # anything that changes the bytes goes in here
    parts = {"seg": segment_cmd("ffmpeg", "x"), "seconds": seconds,
             "loop": loop_cmd("ffmpeg", "s", 2, "x")}
    if seconds < SEGMENT_S:
        parts["trim"] = trim_cmd("ffmpeg", "s", seconds, "x")
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(cmd):
    subprocess.run(["nice", "-n", "19"] + cmd, check=True)


def cached(path, name, seconds):
    side = path[:-4] + ".json"
    try:
        with open(side) as f:
            meta = json.load(f)
        return (meta.get("recipe") == recipe(name, seconds)
                and os.path.getsize(path) == meta.get("size"))
    except (OSError, ValueError):
        return False


def write_sidecar(path, name, seconds, build_s):
    meta = {"name": name, "seconds": seconds, "size": os.path.getsize(path),
            "recipe": recipe(name, seconds), "build_seconds": round(build_s, 2)}
    with open(path[:-4] + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def ensure(names=None, out=DEFAULT_OUT, ffmpeg="ffmpeg", log=print):
    """Make sure the named media exist; return {name: {"path", "size", "seconds"}}."""
    names = list(names or MEDIA)
    os.makedirs(out, exist_ok=True)
    result = {}
    seg_path = os.path.join(out, "clip-1m.mp4")
    for name in sorted(names, key=lambda n: (MEDIA[n] != SEGMENT_S, MEDIA[n])):  # the segment first
        seconds = MEDIA[name]
        path = os.path.join(out, name + ".mp4")
        if not cached(path, name, seconds):
            t0 = time.monotonic()
            tmp = path[:-4] + ".part.mp4"
            if seconds == SEGMENT_S:
                _run(segment_cmd(ffmpeg, tmp))
            else:
                if not cached(seg_path, "clip-1m", SEGMENT_S):
                    ensure(["clip-1m"], out, ffmpeg, log)
                if seconds < SEGMENT_S:
                    _run(trim_cmd(ffmpeg, seg_path, seconds, tmp))
                else:
                    _run(loop_cmd(ffmpeg, seg_path, seconds // SEGMENT_S, tmp))
            os.replace(tmp, path)
            meta = write_sidecar(path, name, seconds, time.monotonic() - t0)
            log(f"generated {path}: {meta['size'] / 1e6:.1f} MB in {meta['build_seconds']:.1f} s")
        else:
            log(f"cached    {path}")
        result[name] = {"path": path, "size": os.path.getsize(path), "seconds": seconds}
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", action="append", choices=sorted(MEDIA))
    ap.add_argument("--ffmpeg", default=shutil.which("ffmpeg") or "ffmpeg")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    ensure(args.only, args.out, args.ffmpeg)
    print(f"media ready in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
