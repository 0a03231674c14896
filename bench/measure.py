"""The measurements: raw baselines, one video through the service, a batch's throughput, moviepy."""
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench import MOVIEPY_PIN, log
from bench.client import parse_ts, watch_job
from bench.procfs import RssSampler, cpu_seconds, proc_status, reset_hwm, timed_cmd
from bench.stack import CONVERTER_QUEUE
from services.common import constants as c

REPEATED_FIGURES = ("upload_s", "upload_mbs", "upload_done_s", "convert_srv_s", "convert_poll_s",
                    "queue_wait_s", "download_s", "download_mbs")


def ffmpeg_baseline(src, workdir, nice):
    """The tutorial's command, file to file: `ffmpeg -i in.mp4 -vn -c:a libmp3lame -q:a 2 out.mp3`."""
    dst = os.path.join(workdir, "raw.mp3")
    result = timed_cmd([shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-hide_banner", "-loglevel",
                        "error", "-y", "-i", src, "-vn", "-c:a", "libmp3lame", "-q:a", "2", dst],
                       nice=nice)
    result["mp3_bytes"] = os.path.getsize(dst) if os.path.exists(dst) else 0
    with contextlib.suppress(OSError):
        os.remove(dst)
    if result["rc"] != 0:
        raise RuntimeError(f"raw ffmpeg failed on {src}")
    return result


def gridfs_baseline(mongo_uri, db_name, src):
    """Raw pymongo GridFS put (and get) of the file, into the services' MongoDB.

    put: `GridFSBucket(db).upload_from_stream(name, file)` with pymongo's defaults (255 KiB chunks),
    bucket `bench_raw`; also with 1 MiB chunks (`bench_raw1m`), the services' chunk size, for
    reference.  get: `open_download_stream(id).read(1 MiB)` loop; when the server answers the
    chunks cursor with more than pymongo accepts in one reply (nx-27017 does past 48 MB), the
    chunks are read 16 per query instead and the get is marked as such."""
    import gridfs
    import pymongo
    client = pymongo.MongoClient(mongo_uri)
    size = os.path.getsize(src)
    out = {}
    try:
        db = client[db_name]
        for label, options in (("", {}), ("_1m", {"chunk_size_bytes": 1 << 20})):
            bucket = gridfs.GridFSBucket(db, bucket_name="bench_raw" + label.replace("_", ""), **options)
            with open(src, "rb") as handle:
                started = time.monotonic()
                fid = bucket.upload_from_stream(os.path.basename(src), handle)
                put = time.monotonic() - started
            out["put" + label] = put
            out["put_mbs" + label] = size / 1e6 / put
            if not label:
                started = time.monotonic()
                try:
                    with bucket.open_download_stream(fid) as stream:
                        received = sum(len(block) for block in iter(lambda: stream.read(1 << 20), b""))
                    out["get_mode"] = "GridOut"
                except Exception as exc:  # pymongo refuses an oversized reply from the server
                    out["get_mode"] = f"16 chunks/query ({type(exc).__name__})"
                    started = time.monotonic()
                    received = read_chunks(db["bench_raw.chunks"], fid)
                get = time.monotonic() - started
                if received != size:
                    raise RuntimeError(f"GridFS get returned {received} of {size} bytes")
                out["get"], out["get_mbs"] = get, size / 1e6 / get
            bucket.delete(fid)
        return out
    finally:
        client.close()


def read_chunks(chunks, fid, per_query=16):
    received = index = 0
    while True:
        docs = list(chunks.find({"files_id": fid, "n": {"$gte": index, "$lt": index + per_query}},
                                sort=[("n", 1)], batch_size=per_query))
        if not docs:
            return received
        received += sum(len(doc["data"]) for doc in docs)
        index += len(docs)


def probe_duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "default=nw=1:nk=1", path], capture_output=True, text=True).stdout
    try:
        return float(out.strip())
    except ValueError:
        return None


def run_video(api, media, workdir, observations, sampler_roots=None, reset_pids=(), hold=(),
              records=None):
    """Upload -> poll -> download one video; optional RSS sampling during the whole flow.
    `hold`: converter pids frozen (SIGSTOP) from before the upload until its 202, so the job is
    converted from the whole stored upload and converting -> done is the conversion alone (without
    it, a video in a container that decodes as it arrives is converted while it uploads). Its
    conversion is then watched on the job's record in `records` (the services' MongoDB), not
    through GET /jobs: each of those is a request to the gateway and an RPC to auth, and they
    came while ffmpeg and ffprobe were starting, on two cores."""
    path, size, seconds = media["path"], media["size"], media["seconds"]
    hwm_reset = {pid: reset_hwm(pid) for pid in reset_pids}
    sampler = RssSampler(sampler_roots or {})
    if sampler_roots:
        sampler.start()
    try:
        sampler.mark("upload")
        for pid in hold:
            os.kill(pid, signal.SIGSTOP)
        try:
            started, started_wall = time.monotonic(), time.time()
            status, payload, upload_s = api.upload(path)
        finally:
            for pid in hold:
                os.kill(pid, signal.SIGCONT)
        sampler.mark("convert")
        if status != 202:
            raise RuntimeError(f"upload of {os.path.basename(path)}: {status} {payload}")
        if not (isinstance(payload, dict) and payload.get("status") == c.QUEUED and payload.get("job_id")):
            observations.append(f"POST /upload answered 202 with {payload!r} (contract: job_id, "
                                f"status={c.QUEUED})")
        job_id = payload["job_id"]
        # polled more often when held: a short conversion must be seen `converting` at least once
        # (the record's clock dates its start and its end)
        deadline = time.monotonic() + 300 + 1.0 * seconds
        if hold and records is not None:
            _, seen, server = watch_job(lambda: records.find_one(
                {"_id": job_id}, projection={"status": 1, "updated_at": 1}) or {}, job_id,
                deadline, interval=0.1)
            job, _, _ = api.poll_job(job_id, deadline)  # finished: the contract's view, once
        else:
            job, seen, server = api.poll_job(job_id, deadline, interval=0.1 if hold else 0.5,
                                             converting_interval=0.5)
        result = timings(job, seen, server, started, started_wall, upload_s)
        result.update(job_id=job_id, size=size, upload_s=upload_s, upload_mbs=size / 1e6 / upload_s)
        if job["status"] != c.DONE:
            raise RuntimeError(f"job {job_id} failed: {job.get('error')}")
        dest = os.path.join(workdir, "dl.mp3")
        sampler.mark("download")
        download_status, headers, received, download_s = api.download(job["mp3_id"], dest)
    finally:
        if sampler_roots:
            sampler.stop()
    if sampler_roots:
        result["rss"] = {"sampled": dict(sampler.peak), "children": dict(sampler.peak_children),
                         "phases": {f"{name}/{phase}": peak
                                    for (name, phase), peak in sampler.phase_peak.items()}}
    result["hwm"] = {pid: (proc_status(pid, "VmHWM") if ok else None) for pid, ok in hwm_reset.items()}
    if download_status != 200:
        raise RuntimeError(f"download {job['mp3_id']}: {download_status}")
    result.update(download_s=download_s, download_mbs=received / 1e6 / download_s, mp3_bytes=received)
    result["mp3_duration"] = check_download(job["mp3_id"], path, seconds, headers, received, dest,
                                            observations)
    with contextlib.suppress(OSError):
        os.remove(dest)
    return result


def timings(job, seen, server, started, started_wall, upload_s):
    """upload->done (by the job record's clock when it has one), converting->done, queued wait."""
    finished = seen.get(job["status"])
    result = {"status": job["status"], "error": job.get("error"),
              "upload_done_s": finished - started}
    if server.get(job["status"]) is not None:   # the job record's clock: no polling error
        result["upload_done_s"] = server[job["status"]] - started_wall
    result["convert_poll_s"] = None
    if c.CONVERTING in seen:
        result["convert_poll_s"] = finished - seen[c.CONVERTING]
        began, ended = server.get(c.CONVERTING), server.get(job["status"])
        if began is not None and ended is not None and ended >= began:
            result["convert_srv_s"] = ended - began
    else:
        log(f"job {job.get('job_id')}: '{c.CONVERTING}' never observed (poll interval 0.5 s)")
    result["queue_wait_s"] = (seen.get(c.CONVERTING, finished) - started) - upload_s
    return result


def check_download(mp3_id, video_path, seconds, headers, received, dest, observations):
    """Contract checks (cheap); anything odd goes into the report's observations. Returns the
    MP3's duration."""
    headers = {name.lower(): value for name, value in headers.items()}
    if headers.get("content-length") and int(headers["content-length"]) != received:
        observations.append(f"download of {mp3_id}: Content-Length {headers['content-length']} "
                            f"but {received} bytes")
    if not headers.get("content-type", "").startswith("audio/mpeg"):
        observations.append(f"download Content-Type is {headers.get('content-type')!r}, "
                            "contract says audio/mpeg")
    want = os.path.splitext(os.path.basename(video_path))[0] + ".mp3"
    if want not in headers.get("content-disposition", ""):
        observations.append(f"download Content-Disposition {headers.get('content-disposition')!r}, "
                            f"expected {want}")
    duration = probe_duration(dest)
    if duration is None or abs(duration - seconds) > 2:
        observations.append(f"MP3 of {os.path.basename(video_path)} lasts {duration} s, "
                            f"the video {seconds} s")
    return duration


def combine(runs):
    """Median of each timing over repeated runs of one video; the first run's RSS data."""
    out = dict(runs[0])
    out["runs"] = len(runs)
    for key in REPEATED_FIGURES:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
            out[key + "_all"] = values
    return out


def cpu_groups(stack, converter_pids):
    """Process groups whose CPU time a batch reports: {label: (pids, part of /proc/<pid>/stat)}."""
    return {"converter python": (converter_pids, "self"),
            "ffmpeg+ffprobe": (converter_pids, "children"),
            "nx-27017": (stack.pids("nx-27017"), "all"),
            "gateway": (stack.pids(c.GATEWAY), "all"),
            "auth+notification": (stack.pids(c.AUTH, c.NOTIFICATION), "all")}


def cpu_of(groups):
    return {label: sum(cpu_seconds(pid, part) or 0 for pid in pids)
            for label, (pids, part) in groups.items()}


def run_batch(stack, api, media, n_jobs, converters, workers, observations):
    """Throughput of `converters` processes x `workers` on a batch of n_jobs.

    The converters are started and waited for (all of them consuming the queue), then frozen
    with SIGSTOP while the batch is uploaded, and released together with SIGCONT: the clock runs
    from SIGCONT to the last job seen `done`, so neither the uploads nor the services' start-up
    are counted, and every converter gets the same head start."""
    stack.start_converters(converters, workers)
    stack.wait_consumers(CONVERTER_QUEUE, converters)
    pids = stack.pids(*stack.converters)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        jobs = []
        for index in range(n_jobs):
            status, payload, _ = api.upload(media["path"], filename=f"batch{index}.mp4")
            if status != 202:
                raise RuntimeError(f"batch upload {index}: {status} {payload}")
            jobs.append(payload["job_id"])
        time.sleep(1.0)        # let the broker route the events
    finally:
        groups = cpu_groups(stack, pids)
        cpu_before = cpu_of(groups)
        mine_before = os.times()
        released = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    began, finished = wait_batch(api, jobs, time.monotonic() + 120 + n_jobs * (10 + 2 * media["seconds"]))
    failed = [job for job, (status, _) in finished.items() if status != c.DONE]
    if failed:
        observations.append(f"batch: {len(failed)} of {n_jobs} jobs failed")
    span = max(at for _, at in finished.values()) - released
    cpu = {label: used - cpu_before[label] for label, used in cpu_of(groups).items()}
    mine = os.times()
    cpu["bench client"] = (mine.user + mine.system) - (mine_before.user + mine_before.system)
    per_job = [finished[job][1] - began[job] for job in jobs if began.get(job) is not None]
    return {"converters": converters, "workers": workers, "jobs": n_jobs, "span_s": span,
            "jobs_min": n_jobs / span * 60,
            "per_job_s": statistics.median(per_job) if per_job else None,
            "max_parallel": most_at_once(began, finished), "cpu": cpu, "failed": len(failed)}


def wait_batch(api, jobs, deadline):
    """Poll until every job is finished: ({job: when it began converting}, {job: (status, when
    finished)}), times from the job records. One GET /jobs per round when the gateway has it, so
    polling costs the services little CPU."""
    began, finished = {}, {}
    use_list = True
    while len(finished) < len(jobs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch not finished: {len(finished)}/{len(jobs)} done")
        listing = None
        if use_list:
            status, body, _ = api.call("GET", "/jobs")
            if status == 200 and isinstance(body, dict) and isinstance(body.get("jobs"), list):
                listing = {job.get("job_id"): job for job in body["jobs"]}
            else:
                use_list = False
        for job_id in jobs:
            if job_id in finished:
                continue
            if listing is not None:
                job = listing.get(job_id) or {}
            else:
                status, job, _ = api.call("GET", f"/jobs/{job_id}")
                job = job if status == 200 else {}
            at = parse_ts(job.get("updated_at"))
            if job.get("status") == c.CONVERTING and job_id not in began:
                began[job_id] = at
            if job.get("status") in c.FINISHED_STATES:
                finished[job_id] = (job["status"], at)
        time.sleep(0.25)
    return began, finished


def most_at_once(began, finished):
    """Most jobs seen `converting` at the same time."""
    known = [job for job in began if began[job] is not None]
    events = sorted([(finished[job][1], -1) for job in known] + [(began[job], 1) for job in known])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def moviepy_row(src, nice, venv):
    """The tutorial's path, in its own venv (created on first use)."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        log(f"creating {venv} with {MOVIEPY_PIN}")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", MOVIEPY_PIN], check=True)
    with tempfile.TemporaryDirectory(prefix="mpy-") as tmp:
        dst = os.path.join(tmp, "out.mp3")
        code = ("import sys\n"
                "try:\n from moviepy import VideoFileClip\n"
                "except ImportError:\n from moviepy.editor import VideoFileClip\n"
                "clip = VideoFileClip(sys.argv[1])\n"
                "clip.audio.write_audiofile(sys.argv[2], logger=None)\n"
                "clip.close()\n")
        result = timed_cmd([python, "-c", code, src, dst], nice=nice)
        result["mp3_bytes"] = os.path.getsize(dst) if os.path.exists(dst) else 0
        result["version"] = subprocess.run(
            [python, "-c", "import importlib.metadata as m, imageio_ffmpeg as i; "
             "print(m.version('moviepy'), i.get_ffmpeg_exe())"],
            capture_output=True, text=True).stdout.strip()
    if result["rc"] != 0:
        raise RuntimeError("moviepy run failed")
    return result
