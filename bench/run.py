"""`make bench`: python -m bench.run [--quick] [--only NAME ...] (see the bench package's docstring)."""
import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import pymongo

from bench import (FAIRNESS_CLIP, FAIRNESS_VIDEO, HERE, MOVIEPY_VIDEO, RSS_VIDEO, SHORT_REPEATS,
                   VIDEOS, gen_media, log)
from bench.client import Api
from bench.fairness import run_fairness
from bench.measure import combine, ffmpeg_baseline, gridfs_baseline, moviepy_row, run_batch, run_video
from bench.report import Results, report
from bench.stack import BenchStack
from bench.streaming import as_matroska, as_moov_last, run_streaming
from devtools.stack import NX_27017, NotReady, tail
from services.common import constants as c
from services.common.settings import MongoSettings

MONGO_URI = MongoSettings.MONGO_URI.variable

PARTS = ["1m", "10m", "60m", "rss", "scale", "fairness", "moviepy", "baseline", "options",
         "streaming"]
OPTIONS_VIDEO = "10m"
STREAMING_VIDEO = "10m"
QUICK_PARTS = {"1m", "baseline", "scale"}
BATCH_LAYOUTS = ((1, 1), (2, 1), (1, 2))  # (converter processes, CONVERTER_WORKERS)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="End-to-end benchmark of the video-to-MP3 service.")
    parser.add_argument("--quick", action="store_true", help="1-minute video only, batch of 4, no moviepy")
    parser.add_argument("--only", action="append", choices=PARTS)
    parser.add_argument("--batch", type=int, help="jobs in the throughput batch (default 12, --quick 4)")
    parser.add_argument("--batch-video", default="1m", choices=sorted(VIDEOS),
                        help="video of the throughput batch (default 1m)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="service runs of the 10-minute video, and SHORT_REPEATS times as many "
                             "of the 1-minute one (median; default 5)")
    parser.add_argument("--options-runs", type=int, default=1,
                        help="runs of each conversion option (median; default 1: 11 options x 10 "
                             "minutes of video took over 6 minutes with 3)")
    parser.add_argument("--stream-rate", type=float, default=4.0,
                        help="MB/s of the streaming part's throttled tus client (default 4)")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    parser.add_argument("--no-nice", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir and logs")
    parser.add_argument("--nx", default=NX_27017, help="path of nx-27017 (default .venv-mongo/bin/nx-27017)")
    parser.add_argument("--mongo-uri", help="use this MongoDB instead of starting nx-27017")
    parser.add_argument("--mongo-db", default="mp3svc_bench")
    parser.add_argument("--amqp-uri", help="use this broker/vhost instead of a fresh vhost")
    parser.add_argument("--rabbit-mgmt", default="http://guest:guest@127.0.0.1:15672")
    parser.add_argument("--moviepy-venv", default=os.path.join(HERE, ".venv-moviepy"))
    args = parser.parse_args(argv)
    args.batch = args.batch or (4 if args.quick else 12)
    args.parts = set(args.only or []) or (QUICK_PARTS if args.quick else set(PARTS))
    return args


class Plan:
    """What a run measures, from --only/--quick: the videos, the media they need, the stack."""

    def __init__(self, args):
        parts = args.parts
        self.videos = [name for name in VIDEOS if name in parts]
        if "rss" in parts and RSS_VIDEO not in self.videos:
            self.videos.append(RSS_VIDEO)
        self.rss = "rss" in parts
        self.scale = "scale" in parts
        self.moviepy = "moviepy" in parts
        self.streaming = "streaming" in parts
        self.fairness = "fairness" in parts
        self.media = set(self.videos)
        if self.streaming:
            self.media.add(STREAMING_VIDEO)
        if self.scale:
            self.media.add(args.batch_video)
        if parts == {"baseline"}:
            self.media |= set(VIDEOS)
        if self.moviepy:
            self.media.add(MOVIEPY_VIDEO)
        if self.fairness:
            self.media.add(FAIRNESS_VIDEO)
        if "options" in parts:
            self.media.add(OPTIONS_VIDEO)
        self.baselines = []
        if "baseline" in parts:
            self.baselines = self.videos or [name for name in VIDEOS if name in self.media] or ["1m"]
        self.services = bool(self.videos or self.scale or self.fairness or self.streaming)
        self.stack = bool(self.services or self.baselines)


def first_line(argv):
    return subprocess.run(argv, capture_output=True, text=True).stdout.split("\n")[0]


def load_average():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def measure_video(name, media, api, stack, results, args, workdir, with_rss):
    """One video through the service (--repeat times up to 10 minutes), each run followed by a raw
    ffmpeg run when there is a baseline: the machine's speed drifts, ratios use the median."""
    roots, reset = None, ()
    if with_rss:
        roots = {c.GATEWAY: stack.pids(c.GATEWAY), c.CONVERTER: stack.pids(c.CONVERTER),
                 "nx-27017": stack.pids("nx-27017")}
        reset = [pid for pids in roots.values() for pid in pids]
    repeats = 1 if name == RSS_VIDEO else max(1, args.repeat) * (SHORT_REPEATS if
                                                                 media["seconds"] <= 60 else 1)
    runs, stored = [], []
    client = pymongo.MongoClient(stack.env[MONGO_URI])  # held runs are watched on the record
    client.admin.command("ping")  # connected before the first run it watches
    records = client[args.mongo_db][c.JOBS_COLLECTION]
    try:
        for index in range(repeats):
            try:
                log(f"video {name}: upload -> done -> download ({index + 1}/{repeats})")
                runs.append(run_video(api, media, workdir, results.bugs, roots if index == 0 else None,
                                      reset if index == 0 else ()))
                log(f"video {name}: the same with the converter held until the upload is stored "
                    f"({index + 1}/{repeats})")
                stored.append(run_video(api, media, workdir, results.bugs,
                                        hold=stack.pids(*stack.converters), records=records))
            except RuntimeError as exc:
                results.errors.append(f"{name}: {exc}")
                log(f"video {name} FAILED: {exc}")
                break
            if name in results.baseline:
                results.baseline[name].setdefault("ffmpeg_after", []).append(
                    ffmpeg_baseline(media["path"], workdir, not args.no_nice))
    finally:
        client.close()
    if not runs or not stored:
        results.videos[name] = {"failed": results.errors[-1], "size": media["size"]}
        return
    video = results.videos[name] = combine(runs)
    held = combine(stored)
    video["stored_convert_s"] = held.get("convert_srv_s") or held.get("convert_poll_s")
    video["stored_convert_s_all"] = held.get("convert_srv_s_all", [])
    log(f"video {name}: " + json.dumps({key: value for key, value in video.items()
                                        if key not in ("rss", "hwm")}, default=str))
    if roots:
        rows = rss_rows(video, roots)
        results.rss_by_video[name] = {"video_mb": media["size"] / 1e6, "rows": rows}
        if name == RSS_VIDEO:
            results.rss = {"video_mb": media["size"] / 1e6, "rows": rows}


def rss_rows(video, roots):
    rows = {}
    for name, pids in roots.items():
        peaks = [video["hwm"][pid] for pid in pids if video["hwm"].get(pid) is not None]
        phases = video["rss"]["phases"]
        rows[name] = {"hwm": max(peaks) if peaks else None,
                      "sampled": video["rss"]["sampled"].get(name),
                      "child": video["rss"]["children"].get(name),
                      "upload": phases.get(f"{name}/upload"),
                      "convert": phases.get(f"{name}/convert"),
                      "download": phases.get(f"{name}/download")}
    return rows


def measure(plan, args, media, stack, results, workdir):
    nice = not args.no_nice
    if plan.stack:
        stack.start_backing()
    api = None
    if plan.services:
        stack.start_all(converters=1, workers=2)
        log(f"stack healthy at {stack.base}")
        api = Api("127.0.0.1", stack.gateway_port)
        api.sign_up()
    for name in plan.baselines:   # same MongoDB, idle services
        path = media[VIDEOS[name]]["path"]
        log(f"baseline {name}: raw ffmpeg + raw GridFS put/get")
        results.baseline[name] = {
            "size": media[VIDEOS[name]]["size"], "ffmpeg": ffmpeg_baseline(path, workdir, nice),
            "gridfs": gridfs_baseline(stack.env[MONGO_URI], args.mongo_db, path)}
    for name in plan.videos:
        measure_video(name, media[VIDEOS[name]], api, stack, results, args, workdir,
                      with_rss=plan.rss)
    if plan.scale:
        for converters, workers in BATCH_LAYOUTS:
            log(f"batch: {args.batch} x {args.batch_video} with {converters} converter(s) x "
                f"{workers} worker(s)")
            try:
                results.scale.append(run_batch(stack, api, media[VIDEOS[args.batch_video]], args.batch,
                                               converters, workers, results.bugs))
                log(f"  -> {results.scale[-1]}")
            except (RuntimeError, NotReady) as exc:
                results.errors.append(f"batch {converters}x{workers}: {exc}")
                break
    if plan.streaming:
        mp4 = media[VIDEOS[STREAMING_VIDEO]]["path"]   # faststart (moov first)
        sources = [(os.path.basename(mp4), mp4)]
        mkv = as_matroska(mp4, workdir)
        sources.insert(0, (os.path.basename(mkv), mkv))
        moov_last = as_moov_last(mp4, workdir)
        sources.append((os.path.basename(moov_last), moov_last))
        try:
            results.streaming = run_streaming(api, sources, workdir, nice, args.stream_rate * 1e6)
        except RuntimeError as exc:
            results.errors.append(f"streaming: {exc}")
    if plan.fairness:
        log(f"fairness: 1 converter worker, user A queues 4 x {FAIRNESS_VIDEO} normalize=true, "
            "then an 8-second clip (A's own, then user B's)")
        try:
            results.fairness = run_fairness(stack, media[VIDEOS[FAIRNESS_VIDEO]], media[FAIRNESS_CLIP],
                                            results.bugs)
            log(f"  -> {results.fairness}")
        except (RuntimeError, NotReady) as exc:
            results.errors.append(f"fairness: {exc}")
    if "options" in args.parts:
        log("conversion options on the %s video" % OPTIONS_VIDEO)
        results.options = options_table(media[VIDEOS[OPTIONS_VIDEO]]["path"], nice, args.options_runs)
    if plan.moviepy:
        stack.stop_all()
        src = media[VIDEOS[MOVIEPY_VIDEO]]["path"]
        results.moviepy_ffmpeg = ffmpeg_baseline(src, workdir, nice)   # right before moviepy
        log("moviepy reference row")
        try:
            results.moviepy = moviepy_row(src, nice, args.moviepy_venv)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            results.errors.append(f"moviepy: {exc}")


def options_table(path, nice, runs):
    """bench/options.py in its own process (it runs the Encoder under eventlet): a markdown table."""
    argv = [sys.executable, os.path.join(HERE, "options.py"), path, "--runs", str(runs)]
    return subprocess.run((["nice", "-n", "19"] if nice else []) + argv, check=True,
                          capture_output=True, text=True).stdout


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    plan = Plan(args)
    results = Results(started=time.strftime("%Y-%m-%d %H:%M:%S %Z"), argv=argv,
                      ffmpeg_version=first_line(["ffmpeg", "-version"]).split(" Copyright")[0],
                      load_before=load_average(), scale_video=VIDEOS[args.batch_video])
    generating = time.monotonic()
    media = gen_media.ensure([VIDEOS[name] for name in sorted(plan.media)]
                             + ([FAIRNESS_CLIP] if plan.fairness else []), log=log)
    log(f"media ready in {time.monotonic() - generating:.1f} s")

    workdir = tempfile.mkdtemp(prefix="mp3bench-")
    stack = BenchStack(args, workdir)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        measure(plan, args, media, stack, results, workdir)
    except KeyboardInterrupt:
        results.errors.append("interrupted")
    except (Exception, SystemExit) as exc:  # report what was measured so far, with the error
        results.errors.append(f"{type(exc).__name__}: {exc}")
        log("ERROR: " + traceback.format_exc())
    finally:
        for name, status in stack.exited():
            results.errors.append(f"{name} had exited with {status}; log tail:\n```\n"
                                  + tail(stack.log_path(name), 15) + "```")
        stack.stop_all()
        results.load_after = load_average()
        if args.keep or results.errors:
            log(f"kept {workdir} (service logs, data)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, nice=not args.no_nice)
    print(text)
    with open(args.out, "w") as handle:
        handle.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as handle:
        json.dump(dataclasses.asdict(results), handle, indent=1, default=str)
    log(f"wrote {args.out}")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
