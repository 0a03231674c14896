"""The markdown report of a bench run (bench/results.md) and the figures behind it (results.json)."""
import dataclasses
import os
import statistics

from bench import MOVIEPY_VIDEO, ROOT, TARGETS, UPLOAD_DONE_VIDEOS
from bench.streaming import streaming_section
from services.common import constants as c


@dataclasses.dataclass
class Results:
    """Everything one run measured, by section; written as JSON next to the report."""
    started: str
    argv: list
    ffmpeg_version: str
    load_before: str
    load_after: str = "n/a"
    scale_video: str = ""
    baseline: dict = dataclasses.field(default_factory=dict)   # video -> ffmpeg/gridfs figures
    videos: dict = dataclasses.field(default_factory=dict)     # video -> run_video figures
    rss: dict = None
    rss_by_video: dict = dataclasses.field(default_factory=dict)  # video -> the rss rows of its first run
    scale: list = dataclasses.field(default_factory=list)      # one run_batch result per layout
    moviepy: dict = None
    moviepy_ffmpeg: dict = None
    options: str = None     # bench/options.py's markdown table
    fairness: list = None   # bench/fairness.py's rows: before (FIFO order), after (fair sharing)
    streaming: dict = dataclasses.field(default_factory=dict)  # name -> bench/streaming.py figures
    errors: list = dataclasses.field(default_factory=list)
    bugs: list = dataclasses.field(default_factory=list)       # contract deviations observed


def raw_ffmpeg_runs(baseline, figure="wall"):
    """A figure of each raw ffmpeg run of a video (before, and after each service run)."""
    if not baseline.get("ffmpeg"):
        return []
    return [run[figure] for run in [baseline["ffmpeg"]] + (baseline.get("ffmpeg_after") or [])]


def raw_ffmpeg_wall(baseline):
    """Median wall time of the raw ffmpeg runs."""
    walls = raw_ffmpeg_runs(baseline)
    return statistics.median(walls) if walls else None


def fmt(value, spec=".2f", none="n/a"):
    return none if value is None else format(value, spec)


def verdict(ok):
    return "PASS" if ok else "MISS"


def baselines_section(results):
    """Raw ffmpeg and raw GridFS, per video."""
    yield "## Baselines (same run, same MongoDB, services idle)\n"
    yield ("| video | size MB | raw ffmpeg wall s, median (min–max, runs) | CPU s "
           "| max RSS MB | raw GridFS put s | put MB/s "
           "| put MB/s, 1 MiB chunks | raw GridFS get MB/s |")
    yield "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for name, baseline in results.baseline.items():
        ff, gf = baseline["ffmpeg"], baseline["gridfs"]
        walls = raw_ffmpeg_runs(baseline)
        walls_text = (f"{statistics.median(walls):.2f} ({min(walls):.2f}–{max(walls):.2f}, "
                      f"n={len(walls)})" if len(walls) > 1 else f"{walls[0]:.2f}")
        cpus = f"{statistics.median(raw_ffmpeg_runs(baseline, 'cpu')):.2f}"
        star = "" if gf["get_mode"] == "GridOut" else "*"
        yield (f"| {name} | {baseline['size'] / 1e6:.1f} | {walls_text} | {cpus} | "
               f"{ff['maxrss_mb']:.0f} | {gf['put']:.2f} | {gf['put_mbs']:.0f} | "
               f"{gf['put_mbs_1m']:.0f} | {gf['get_mbs']:.0f}{star} |")
    yield ("\nraw ffmpeg: `ffmpeg -i in.mp4 -vn -c:a libmp3lame -q:a 2 out.mp3`; put: pymongo "
           "`GridFSBucket(db).upload_from_stream()` (default 255 KiB chunks); get: "
           "`open_download_stream().read(1 MiB)` loop"
           + ("; * = GridOut refused the server's reply, read 16 chunks per query instead"
              if any(run["gridfs"]["get_mode"] != "GridOut" for run in results.baseline.values())
              else "")
           + ".\n")


def videos_section(results):
    """Each video through the service, with the ratios to the baselines."""
    yield "## Through the service (one converter process, CONVERTER_WORKERS=2)\n"
    yield ("| video | size MB | upload s | upload MB/s | upload→done s | last byte→done s "
           "| upload→done / (raw ffmpeg + raw put)¹ | converting→done s, upload stored first "
           "| converting→done / raw ffmpeg² (ratio of the medians) | download MB/s |")
    yield "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for name, video in results.videos.items():
        if video.get("failed"):
            yield f"| {name} | {video.get('size', 0) / 1e6:.1f} | FAILED: {video['failed']} | | | | | | | |"
            continue
        runs = video.get("stored_convert_s_all") or []
        converting_text = fmt(video["stored_convert_s"]) + (
            f" ({min(runs):.2f}–{max(runs):.2f}, n={len(runs)})" if len(runs) > 1 else "")
        yield (f"| {name} | {video['size'] / 1e6:.1f} | {video['upload_s']:.2f} | "
               f"{video['upload_mbs']:.0f} | {video['upload_done_s']:.2f} | "
               f"{video['upload_done_s'] - video['upload_s']:.2f} | "
               f"{fmt(video['ratio_upload_done'])} | {converting_text} | "
               f"{fmt(video['ratio_convert'])} ({fmt(video['ratio_convert_medians'])}) | "
               f"{video['download_mbs']:.0f} |")
    yield ("\nEach video goes through twice per run. First as a user sends it (POST /upload, the "
           "converter running): the faststart MP4 is converted while it arrives, and upload→done "
           "runs from the first byte sent to the job record's `updated_at` at `done` (same machine "
           "clock). Then with the converter held (SIGSTOP) until the upload's 202, so the job is "
           "converted from the whole stored upload: converting→done is the record's `updated_at` "
           "when the converter claimed it to when it entered `done`, the conversion's own cost "
           "against raw ffmpeg. GET /jobs/<id> polled every 0.5 s; a held run's job record is "
           "read from MongoDB every 0.1 s instead (each GET is a request to the gateway and an RPC "
           "to auth, which came as ffmpeg and ffprobe started), then GET once. Videos up to 10 "
           "minutes "
           "go through `--repeat` times (default 5; the 1-minute one three times as often, its runs "
           "short and the noisiest) and every figure is the median; raw ffmpeg runs "
           "once before the first pair of runs and once after each. ¹ raw ffmpeg = the median of "
           "those runs. ² the median of each held run's converting→done over the mean of the raw "
           "ffmpeg runs either side of it: the machine's speed drifts (raw ffmpeg on the same file "
           "varies by up to ±15 % within a run), and a ratio to the runs next to it is not moved by "
           "the drift; the ratio of the medians (converting→done over ¹) in brackets.\n")


def rss_section(results):
    """Peak memory of the services with the largest video."""
    yield (f"## Peak RSS with the {results.rss['video_mb']:.0f} MB video (upload, conversion, download)\n")
    yield ("| process | peak RSS MB (VmHWM after reset) | peak RSS MB (10 Hz sampling) | "
           "during upload | during conversion | during download | largest child MB (ffmpeg) |")
    yield "|---|---:|---:|---:|---:|---:|---:|"
    for name, row in results.rss["rows"].items():
        yield (f"| {name} | {fmt(row.get('hwm'), '.0f')} | {fmt(row.get('sampled'), '.0f')} | "
               f"{fmt(row.get('upload'), '.0f')} | {fmt(row.get('convert'), '.0f')} | "
               f"{fmt(row.get('download'), '.0f')} | {fmt(row.get('child'), '.0f')} |")
    yield ("\nVmHWM reset with `echo 5 > /proc/<pid>/clear_refs` just before the upload and read "
           "after the download; the sampler reads VmRSS of the service processes (started by "
           "the bench's stack) every 0.1 s.\n")
    if len(results.rss_by_video) > 1:
        videos = list(results.rss_by_video.items())
        yield "Peak RSS MB (VmHWM) by the size of the video, the same way (each video's first run):\n"
        yield "| process | " + " | ".join(f"{name} ({rss['video_mb']:.0f} MB)" for name, rss in videos) + " |"
        yield "|---|" + "---:|" * len(videos)
        for process in results.rss["rows"]:
            yield (f"| {process} | " + " | ".join(fmt(peak_rss(rss["rows"].get(process)), ".0f")
                                                  for _, rss in videos) + " |")
        yield ""


def scale_section(results):
    """Throughput of the batch per converter layout."""
    yield (f"## Throughput: batch of {results.scale[0]['jobs']} x {results.scale_video}\n")
    groups = list(results.scale[0].get("cpu", {}))
    yield ("| converter processes | CONVERTER_WORKERS | batch s (release → last done) | jobs/min "
           "| median converting→done per job s | most jobs converting at once | vs 1 process "
           "| CPU s: " + " / ".join(groups) + " | CPU used of 2 cores × batch s |")
    yield "|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    base = results.scale[0]["jobs_min"]
    for batch in results.scale:
        cpu = batch.get("cpu", {})
        used = sum(cpu.values()) / ((os.cpu_count() or 2) * batch["span_s"])
        yield (f"| {batch['converters']} | {batch['workers']} | {batch['span_s']:.2f} | "
               f"{batch['jobs_min']:.1f} | {fmt(batch['per_job_s'])} | "
               f"{batch.get('max_parallel', 'n/a')} | {batch['jobs_min'] / base:.2f} | "
               + " / ".join(f"{cpu.get(group, 0):.2f}" for group in groups) + f" | {used:.0%} |")
    yield ("\nThe converters are started and consuming, frozen (SIGSTOP) while the batch is "
           "uploaded, then released together (SIGCONT); the clock runs from the release to the "
           "last job seen `done`. CPU s: user+sys consumed during the batch (converter "
           "processes themselves, and their ffmpeg/ffprobe children; bench client = this harness "
           "polling GET /jobs; "
           "RabbitMQ not counted).\n")


def fairness_section(results):
    """B's short job behind A's backlog, before and after fair sharing."""
    yield "## Fairness: one converter worker, A's 4 x 10m normalize=true, then an 8-second clip\n"
    yield ("| round | clip upload→done s | clip release→done s | A's total s (release → 4th done) "
           "| A's jobs done before the clip |")
    yield "|---|---:|---:|---:|---:|"
    for row in results.fairness:
        yield (f"| {row['label']} | {row['clip_s']:.1f} | {row['clip_after_release_s']:.1f} | "
               f"{row['a_total_s']:.1f} | {row['a_done_before_clip']} of 4 |")
    yield ("\nCONVERTER_WORKERS=1, one converter process, frozen (SIGSTOP) while A's four uploads "
           "and then the clip go in, released (SIGCONT) after the clip's, so all four of A's jobs "
           "are queued ahead of it. Before: the clip is A's own fifth job; a user's jobs go oldest "
           "first, which is the order every job had before fair sharing "
           "(services/converter/fairness.py). After: the clip is user B's. Times end at the job "
           "records' `updated_at` at `done`; the clip's upload→done starts at its first byte (its "
           "own upload included, under a second), A's total at the release.\n")


def moviepy_section(results):
    """The tutorial's moviepy path next to raw ffmpeg."""
    moviepy = results.moviepy
    ff = results.moviepy_ffmpeg or results.baseline.get(MOVIEPY_VIDEO, {}).get("ffmpeg")
    yield (f"## Reference: the tutorial's moviepy path on {MOVIEPY_VIDEO}\n")
    yield ("| path | wall s | CPU s | peak RSS MB (largest process) | peak RSS MB (process tree) "
           "| MP3 MB |")
    yield "|---|---:|---:|---:|---:|---:|"
    if ff:
        yield (f"| raw ffmpeg -vn -q:a 2 (just before) | {ff['wall']:.2f} | {ff['cpu']:.2f} | "
               f"{ff['maxrss_mb']:.0f} | {fmt(ff.get('tree_mb'), '.0f')} | "
               f"{ff.get('mp3_bytes', 0) / 1e6:.1f} |")
    yield (f"| moviepy {moviepy['version'].split()[0]} VideoFileClip.audio.write_audiofile | "
           f"{moviepy['wall']:.2f} | {moviepy['cpu']:.2f} | {moviepy['maxrss_mb']:.0f} | "
           f"{fmt(moviepy.get('tree_mb'), '.0f')} | {moviepy['mp3_bytes'] / 1e6:.1f} |")
    yield (f"\n(moviepy uses imageio-ffmpeg's static ffmpeg: "
           f"`{os.path.relpath(moviepy['version'].split()[-1], ROOT)}`; "
           "its default MP3 is libmp3lame at ffmpeg's default bitrate, not -q:a 2.)\n")


def targets_section(results):
    """Each target with its measure and PASS or MISS."""
    yield "## Targets\n"
    yield "| target | measured | verdict |"
    yield "|---|---|---|"
    for name in UPLOAD_DONE_VIDEOS:
        ratio = results.videos.get(name, {}).get("ratio_upload_done")
        if ratio is not None:
            yield (f"| upload→done ≤ {TARGETS['upload_done_ratio']} × (raw ffmpeg + raw GridFS "
                   f"put), {name} | {ratio:.2f} × | "
                   f"{verdict(ratio <= TARGETS['upload_done_ratio'])} |")
    for name, video in results.videos.items():
        ratio = video.get("ratio_convert")
        if ratio is not None:
            yield (f"| converting→done ≤ {TARGETS['convert_ratio']} × raw ffmpeg, {name} | "
                   f"{ratio:.2f} × | {verdict(ratio <= TARGETS['convert_ratio'])} |")
    if results.rss:
        for name, row in results.rss["rows"].items():
            if name in (c.GATEWAY, c.CONVERTER):
                peak = peak_rss(row)
                yield (f"| {name} peak RSS < {TARGETS['rss_mb']:.0f} MB with the 1 GB video | "
                       f"{peak:.0f} MB | {verdict(peak < TARGETS['rss_mb'])} |")
    smallest = min(results.rss_by_video.values(), key=lambda rss: rss["video_mb"], default=None)
    if results.rss and smallest is not None and smallest["video_mb"] < results.rss["video_mb"]:
        for name in (c.GATEWAY, c.CONVERTER):
            small = peak_rss(smallest["rows"].get(name))
            big = peak_rss(results.rss["rows"].get(name))
            if small and big:
                yield (f"| {name} peak RSS flat in file size: {results.rss['video_mb']:.0f} MB ≤ "
                       f"{smallest['video_mb']:.0f} MB + {TARGETS['rss_flat_mb']:.0f} MB | "
                       f"{big:.0f} vs {small:.0f} MB | "
                       f"{verdict(big <= small + TARGETS['rss_flat_mb'])} |")
    if results.scale and len(results.scale) > 1:
        ratio = results.scale[1]["jobs_min"] / results.scale[0]["jobs_min"]
        yield (f"| 2 converters ≥ {TARGETS['scale_ratio']} × jobs/min of 1 | {ratio:.2f} × | "
               f"{verdict(ratio >= TARGETS['scale_ratio'])} |")


def peak_rss(row):
    """The larger of a process's VmHWM and sampled peak (MB), None when neither was read."""
    peaks = [mb for mb in ((row or {}).get("hwm"), (row or {}).get("sampled")) if mb is not None]
    return max(peaks) if peaks else None


def add_ratios(results):
    """Each video's upload->done / (raw ffmpeg + raw put), and converting->done / raw ffmpeg: the
    median of each held run's ratio to the raw ffmpeg runs either side of it (the machine's speed
    drifts between runs), and the ratio of the medians beside it."""
    for name, video in results.videos.items():
        baseline = results.baseline.get(name, {})
        ffmpeg_wall, gridfs = raw_ffmpeg_wall(baseline), baseline.get("gridfs")
        converting = video.get("stored_convert_s")
        video["ratio_upload_done"] = video["ratio_convert"] = video["ratio_convert_medians"] = None
        if ffmpeg_wall and gridfs and not video.get("failed"):
            video["ratio_upload_done"] = video["upload_done_s"] / (ffmpeg_wall + gridfs["put"])
        if ffmpeg_wall and converting:
            video["ratio_convert_medians"] = converting / ffmpeg_wall
            walls = raw_ffmpeg_runs(baseline)  # before the first run, then after each
            paired = [held / ((walls[index] + walls[index + 1]) / 2)
                      for index, held in enumerate(video.get("stored_convert_s_all") or [])
                      if index + 1 < len(walls)]
            video["ratio_convert"] = statistics.median(paired) if paired else \
                video["ratio_convert_medians"]


def options_section(results):
    yield "## Conversion options (each as a ratio to the default conversion)\n"
    yield results.options


def report(results, nice):
    """The markdown report of a run."""
    add_ratios(results)
    lines = ["# Benchmark results\n",
             f"Run {results.started} on {os.uname().nodename} ({os.cpu_count()} cores); "
             f"load average before/after: {results.load_before} / {results.load_after}; "
             f"ffmpeg: {results.ffmpeg_version}; "
             f"{'everything under nice -n 19' if nice else 'not niced'}.\n"]
    sections = ((results.baseline, baselines_section), (results.videos, videos_section),
                (results.rss, rss_section), (results.scale, scale_section),
                (results.fairness, fairness_section),
                (results.moviepy, moviepy_section), (results.streaming, streaming_section),
                (results.options, options_section),
                (results.videos or results.rss or len(results.scale) > 1, targets_section))
    for present, section in sections:
        if present:
            lines += section(results)
    out = lines.append
    out("")
    if results.errors:
        out("## Errors\n")
        lines += [f"- {error}" for error in results.errors]
        out("")
    if results.bugs:
        out("## Observations (contract deviations seen during the run)\n")
        lines += [f"- {bug}" for bug in dict.fromkeys(results.bugs)]
        out("")
    flags = "".join(" " + arg for arg in results.argv)
    out(f"Reproduce: `make bench` (`.venv/bin/python -m bench.run{flags}`).")
    return "\n".join(lines) + "\n"
