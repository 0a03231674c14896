"""The gateway's memory while it streams a large archive (`python -m bench.archive_memory`).

Starts its own stack (bench.stack: nx-27017, a fresh RabbitMQ vhost, the mail sink, auth and the
gateway as `nameko run` processes; no converter: nothing is converted), makes one real MP3 of
--minutes (default 60) of sound at 128 kbit/s with ffmpeg, stores it in GridFS once as the user's
MP3 and records --jobs (default 20) finished jobs of that user pointing at it (each job's MP3 is
read from GridFS again, as when they are distinct files), then POSTs /jobs/archive with every job
and reads the ZIP as it comes. Reports the bytes against Content-Length, the wall time, and the
gateway's RSS idle and at its peak during the stream (VmHWM reset just before, plus a 10 Hz VmRSS
sampler). Flags: --jobs N, --minutes M, --check (the ZIP is kept on disk meanwhile and read back
with zipfile: names, sizes, CRCs), --no-nice, --out FILE (appends the markdown there too).
"""
import argparse
import datetime
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile

import pymongo

from bench import log
from bench.client import Api
from bench.procfs import RssSampler, proc_status, reset_hwm
from bench.stack import MONGO_URI, BenchStack
from devtools.stack import LOCAL, NX_27017, tail
from services.common import constants as c
from services.storage.files import FileStore

BLOCK = 1 << 20


def make_mp3(path, minutes):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                    "-i", f"sine=frequency=440:sample_rate=44100:duration={minutes * 60}",
                    "-c:a", "libmp3lame", "-b:a", "128k", path], check=True)
    return os.path.getsize(path)


def store_jobs(uri, db_name, owner, path, count):
    """The MP3 in GridFS as `owner`'s, and `count` finished jobs of `owner` with it: their ids."""
    db = pymongo.MongoClient(uri)[db_name]
    upload = FileStore(db).create(c.MP3S_BUCKET, "lecture.mp3", {"owner": owner})
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            upload.write(block)
    upload.commit()
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    size = os.path.getsize(path)
    ids = [uuid.uuid4().hex for _ in range(count)]
    for index, job_id in enumerate(ids):
        db[c.JOBS_COLLECTION].insert_one({
            "_id": job_id, "owner": owner, "filename": "lecture %02d.mp4" % index, "status": c.DONE,
            "mp3_id": upload.file_id, "mp3_size": size, "duration": 3600.0, "progress": 1.0,
            "options": {}, "created_at": now, "updated_at": now, "finished_at": now})
    return ids


def stream_archive(api, job_ids, sink=None):
    """POST /jobs/archive, the body read in 1 MiB blocks (written to `sink` if given, else dropped):
    (status, Content-Length, bytes, seconds to the first byte, seconds in all)."""
    connection = http.client.HTTPConnection(api.host, api.port, timeout=api.timeout)
    started = time.monotonic()
    try:
        connection.request("POST", "/jobs/archive", body=json.dumps({"job_ids": job_ids}).encode(),
                           headers=api._headers({"Content-Type": "application/json"}))
        response = connection.getresponse()
        first = time.monotonic() - started
        received = 0
        while True:
            block = response.read(BLOCK)
            if not block:
                break
            received += len(block)
            if sink is not None:
                sink.write(block)
        return (response.status, int(response.getheader("Content-Length") or -1), received, first,
                time.monotonic() - started)
    finally:
        connection.close()


def run(args, workdir):
    mp3 = os.path.join(workdir, "lecture.mp3")
    started = time.monotonic()
    size = make_mp3(mp3, args.minutes)
    log(f"made a {args.minutes}-minute MP3 of {size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s")
    stack = BenchStack(args, workdir)
    try:
        stack.start_backing()
        stack.start_service(c.AUTH)
        stack.start_service(c.GATEWAY)
        stack.wait_healthy(stack.base, 120)
        api = Api(LOCAL, stack.gateway_port)
        api.sign_up()
        owner = api.call("GET", "/session")[1]["email"]
        job_ids = store_jobs(stack.env[MONGO_URI], args.mongo_db, owner, mp3, args.jobs)
        gateway = stack.pid(c.GATEWAY)
        idle = proc_status(gateway, "VmRSS")
        sampler = RssSampler({"gateway": [gateway]})
        sampler.start()
        reset_hwm(gateway)
        archive = os.path.join(workdir, "archive.zip")
        with open(archive, "wb") if args.check else open(os.devnull, "wb") as sink:
            status, length, received, first, wall = stream_archive(api, job_ids, sink)
        hwm = proc_status(gateway, "VmHWM")
        sampler.stop()
        if status != 200 or received != length:
            raise RuntimeError(f"POST /jobs/archive: {status}, {received} of {length} bytes")
        checked = ""
        if args.check:
            with zipfile.ZipFile(archive) as zipped:
                infos = zipped.infolist()
                assert [info.file_size for info in infos] == [size] * args.jobs, infos[:3]
                assert len({info.filename for info in infos}) == args.jobs
                assert zipped.testzip() is None
            checked = f"; read back with zipfile: {len(infos)} MP3s, sizes and CRCs right"
            os.unlink(archive)
        mb = 1e6
        return "\n".join([
            f"## POST /jobs/archive of {args.jobs} x {args.minutes}-minute MP3s (128 kbit/s, nx-27017)", "",
            "| archive | first byte | wall | MB/s | gateway RSS idle | gateway peak RSS (VmHWM / sampled) |",
            "|---|---|---|---|---|---|",
            f"| {received / mb:.0f} MB ({args.jobs} x {size / mb:.1f} MB) | {first * 1000:.0f} ms | "
            f"{wall:.1f} s | {received / mb / wall:.0f} | {idle or 0:.0f} MB | "
            f"{hwm or 0:.0f} / {sampler.peak.get('gateway', 0):.0f} MB |", "",
            f"`python -m bench.archive_memory --jobs {args.jobs} --minutes {args.minutes}"
            f"{' --check' if args.check else ''}`{checked}", ""])
    except Exception:
        for name, code in stack.exited():
            log(f"{name} exited with {code}:\n{tail(stack.log_path(name), 20)}")
        raise
    finally:
        stack.stop_all()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--no-nice", action="store_true")
    parser.add_argument("--nx", default=NX_27017)
    parser.add_argument("--mongo-uri")
    parser.add_argument("--mongo-db", default="mp3svc_bench")
    parser.add_argument("--amqp-uri")
    parser.add_argument("--rabbit-mgmt", default="http://guest:guest@127.0.0.1:15672")
    parser.add_argument("--batch", type=int, default=4)  # (bench.stack's USER_MAX_ACTIVE_JOBS)
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="mp3bench-archive-")
    try:
        text = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
