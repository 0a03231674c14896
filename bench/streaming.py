"""The "streaming" part of `make bench`: a 10-minute video sent over tus at a steady rate (a throttled
client), as Matroska (converted while it arrives), as a faststart MP4 (moov first: converted while
it arrives too) and as an MP4 whose moov comes last (converted after its last byte, as before),
reporting last byte -> done against raw ffmpeg on the same file.

The client sends 8 MiB PATCHes (the CLI's size) whose bodies are paced to `rate` bytes a second; the
last byte is the moment the last PATCH's body was sent, done the moment GET /jobs says so (polled
every 0.2 s)."""
import base64
import http.client
import os
import subprocess
import time

from bench import log
from bench.measure import ffmpeg_baseline
from services.common import constants as c

PATCH_BYTES = 8 * 1024 * 1024
BLOCK = 256 * 1024
RATE = 4e6  # bytes a second: the 2-5 MB/s
TARGET = 0.3  # last byte -> done <= 0.3 x raw ffmpeg (Matroska: the conversion kept up)


def as_matroska(src, workdir):
    """The same audio and video in Matroska (stream copy: seconds)."""
    path = os.path.join(workdir, os.path.splitext(os.path.basename(src))[0] + ".mkv")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-map", "0", "-c", "copy", path],
                   check=True)
    return path


def as_moov_last(src, workdir):
    """The same MP4 with its moov after the media data (stream copy without faststart)."""
    path = os.path.join(workdir, os.path.splitext(os.path.basename(src))[0] + "-moov-last.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-map", "0", "-c", "copy", path],
                   check=True)
    return path


class Throttled:
    """A tus client of the bench's Api whose PATCH bodies go at `rate` bytes a second."""

    def __init__(self, api, rate):
        self.api, self.rate = api, rate

    def send(self, path):
        """Create and send the upload: (job id, monotonic time of its last byte, seconds sent, the
        job's status as its last PATCH began: None when it was no job yet)."""
        size = os.path.getsize(path)
        name = base64.b64encode(os.path.basename(path).encode()).decode()
        status, body, headers = self.api.call("POST", "/uploads", headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": str(size), "Upload-Metadata": "filename " + name})
        if status != 201:
            raise RuntimeError(f"tus create: {status} {body}")
        location = headers.get("Location") or headers.get("location")
        job_id = location.rsplit("/", 1)[1]
        started = time.monotonic()
        sent, before_last = 0, None
        with open(path, "rb") as handle:
            while sent < size:
                length = min(PATCH_BYTES, size - sent)
                if sent + length == size:
                    status, job, _ = self.api.call("GET", f"/jobs/{job_id}")
                    before_last = job.get("status") if status == 200 else None
                self._patch(location, handle, sent, length, started)
                sent += length
        last = time.monotonic()
        return job_id, last, last - started, before_last

    def _patch(self, location, handle, offset, length, started):
        def body():
            left = length
            while left:
                block = handle.read(min(BLOCK, left))
                left -= len(block)
                # pace: the bytes sent so far are due at started + sent / rate
                due = started + (offset + length - left) / self.rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                yield block
        connection = http.client.HTTPConnection(self.api.host, self.api.port, timeout=600)
        try:
            connection.request("PATCH", location, body=body(), headers=self.api._headers({
                "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream", "Content-Length": str(length)}))
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status != 204:
            raise RuntimeError(f"tus PATCH at {offset}: {response.status} {data[:200]!r}")


def run_streaming(api, sources, workdir, nice, rate=RATE):
    """{name: figures} for each (name, path) in `sources`."""
    rows = {}
    for name, path in sources:
        log(f"streaming {name}: tus at {rate / 1e6:.1f} MB/s")
        job_id, last_byte, upload_s, before_last = Throttled(api, rate).send(path)
        states = {}
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status, job, _ = api.call("GET", f"/jobs/{job_id}")
            if status == 200:
                states.setdefault(job["status"], time.monotonic())
                if job["status"] in c.FINISHED_STATES:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"streaming {name}: job {job_id} not done in time")
        if job["status"] != c.DONE:
            raise RuntimeError(f"streaming {name}: job failed: {job.get('error')}")
        raw = ffmpeg_baseline(path, workdir, nice)
        done = states[c.DONE]
        rows[name] = {
            "size": os.path.getsize(path), "rate_mbs": os.path.getsize(path) / 1e6 / upload_s,
            "upload_s": upload_s, "after_last_byte_s": max(0.0, done - last_byte),
            "raw_ffmpeg_s": raw["wall"], "ratio": max(0.0, done - last_byte) / raw["wall"],
            "status_before_last_patch": before_last,
            "duration": job.get("duration")}
        log(f"  -> {rows[name]}")
    return rows


def streaming_section(results):
    yield "## Streaming: a tus upload at a steady rate, last byte -> done\n"
    yield ("| video | size MB | sent at MB/s | upload s | job as the last PATCH began | "
           "last byte -> done s | raw ffmpeg s | ratio | target |")
    yield "|---|---:|---:|---:|---|---:|---:|---:|---|"
    for name, row in results.streaming.items():
        target = f"<= {TARGET}" if name.endswith("mkv") else "-"
        yield (f"| {name} | {row['size'] / 1e6:.0f} | {row['rate_mbs']:.2f} | {row['upload_s']:.1f} | "
               f"{row['status_before_last_patch'] or 'no job yet'} | "
               f"{row['after_last_byte_s']:.2f} | {row['raw_ffmpeg_s']:.2f} | {row['ratio']:.2f} | "
               f"{target} |")
    yield ""
