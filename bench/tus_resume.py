"""A 1 GB resumable upload interrupted at half and resumed (`python -m bench.tus_resume`).

Starts its own stack (bench.stack: nx-27017, a fresh RabbitMQ vhost, the mail sink, the four services
as `nameko run` processes), generates a ~1 GB video under a temporary directory (43 minutes of
48 kHz stereo PCM with a tiny video track, in Matroska) and uploads it with tuspy in 8 MiB PATCHes
(as the CLI does) through a counting TCP proxy:

  1. straight: every byte but the last, then DELETE (termination): the reference wall time;
  2. interrupted: the proxy drops the connection when half the file has gone through, mid-PATCH;
     1 s later (the CLI's first retry delay) a new tuspy Uploader asks the offset (HEAD) and sends
     the rest; the job converts.

Reports the bytes sent again (sent in total minus the file), each wall time, and the gateway's peak
RSS per phase (VmHWM reset before each, plus a 10 Hz VmRSS sampler). Deletes the file and the data
afterwards (--keep keeps them). Flags: --size BYTES (default 1e9), --no-nice, --out FILE.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.uploader import Uploader

from bench import HERE, log
from bench.client import Api
from bench.procfs import RssSampler, proc_status, reset_hwm
from bench.stack import BenchStack
from devtools.stack import LOCAL, NX_27017, tail

PATCH_BYTES = 8 * 1024 * 1024      # the CLI's PATCH size (mp3svc_client.upload.CHUNK_SIZE)
PCM_BYTES_PER_SECOND = 48000 * 2 * 4  # 48 kHz, stereo, 32-bit


def generate(path, size):
    """A real video of about `size` bytes, fast to make: PCM sound and a 64x64 picture at 1 fps."""
    seconds = max(10, int(size / PCM_BYTES_PER_SECOND))
    subprocess.run(["ffmpeg", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc=size=64x64:rate=1:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-ac", "2", "-c:a", "pcm_s32le", path],
                   check=True)
    return os.path.getsize(path)


class CountingProxy:
    """Forwards 127.0.0.1:<port> to the gateway, counting bytes towards it; `cut_at(n)` drops the
    connection that carries the n-th byte."""

    def __init__(self, target_port):
        self.target = (LOCAL, target_port)
        self.sent = 0
        self._cut = None
        self._lock = threading.Lock()
        self._listener = socket.create_server((LOCAL, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_at(self, total):
        self._cut = total

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up, (client, upstream)),
                                 daemon=True).start()

    def _pump(self, src, dst, up, pair):
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                cut = False
                if up:
                    with self._lock:
                        if self._cut is not None and self.sent + len(data) >= self._cut:
                            data, cut, self._cut = data[:self._cut - self.sent], True, None
                        self.sent += len(data)
                dst.sendall(data)
                if cut:
                    break
        except OSError:
            pass
        finally:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._listener.close()


class Phase:
    """Wall time and the gateway's peak RSS over a block."""

    def __init__(self, name, pid, sampler):
        self.name, self.pid, self.sampler = name, pid, sampler

    def __enter__(self):
        reset_hwm(self.pid)
        self.sampler.mark(self.name)
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.started
        self.hwm = proc_status(self.pid, "VmHWM")
        self.sampled = self.sampler.phase_peak.get(("gateway", self.name))
        self.sampler.mark(None)


def uploader(proxy, token, path, url=None, retries=0):
    """tuspy as the CLI uses it; with retries, a 409 (the server still finishing the cut PATCH when
    it answered HEAD) or a failure asks the offset again after 1 s."""
    client = TusClient(f"http://{LOCAL}:{proxy.port}/uploads", headers={"Authorization": "Bearer " + token})
    return Uploader(file_path=path, client=client, url=url, chunk_size=PATCH_BYTES, retries=retries,
                    retry_delay=1, metadata={"filename": os.path.basename(path)})


def wait_job(api, job_id, deadline):
    """Poll GET /jobs/<id> until done or failed, riding out 503s (nx-27017 busy with the 1 GB file)."""
    unavailable = 0
    while time.monotonic() < deadline:
        status, job, _ = api.call("GET", f"/jobs/{job_id}")
        if status == 200 and job["status"] in ("done", "failed"):
            job["unavailable"] = unavailable
            return job
        if status >= 500:
            unavailable += 1
        elif status != 200:
            raise RuntimeError(f"GET /jobs/{job_id}: {status} {job}")
        time.sleep(1)
    raise RuntimeError(f"job {job_id} not finished in time")


def run(args, workdir):
    video = os.path.join(workdir, "big-upload.mkv")
    started = time.monotonic()
    size = generate(video, args.size)
    log(f"generated {size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s")

    stack = BenchStack(args, workdir)
    try:
        stack.start_backing()
        stack.start_all(converters=1, workers=2)
        api = Api(LOCAL, stack.gateway_port)
        api.sign_up()
        gateway = stack.pid("gateway")
        sampler = RssSampler({"gateway": [gateway]})
        sampler.start()
        idle = proc_status(gateway, "VmRSS")
        proxy = CountingProxy(stack.gateway_port)
        rows = {}

        straight = uploader(proxy, api.token, video)
        with Phase("straight", gateway, sampler) as phase:
            straight.upload(stop_at=size - 1)
        status, _, _ = api.call("DELETE", urllib.parse.urlsplit(straight.url).path,
                                headers={"Tus-Resumable": "1.0.0"})
        rows["straight"] = (phase, proxy.sent, size - 1)
        log(f"straight: {size - 1} bytes in {phase.wall:.1f} s; terminated: {status}")

        proxy.sent = 0
        first = uploader(proxy, api.token, video)
        proxy.cut_at(size // 2)
        with Phase("first half", gateway, sampler) as phase:
            try:
                first.upload()
                raise RuntimeError("the proxy did not cut the upload")
            except (TusUploadFailed, TusCommunicationError) as exc:
                log(f"cut at {proxy.sent} bytes sent: {str(exc)[:80]}")
        rows["first half"] = (phase, proxy.sent, None)
        sent_first = proxy.sent
        time.sleep(1)  # as the CLI waits before it asks the offset (mp3svc_client.upload.RETRY_DELAYS)
        with Phase("resume", gateway, sampler) as phase:
            resumed = uploader(proxy, api.token, video, url=first.url, retries=3)
            held = resumed.offset
            resumed.upload()
        rows["resume"] = (phase, proxy.sent - sent_first, size - held)
        sampler.stop()
        again = proxy.sent - size
        log(f"held {held} at the cut ({sent_first} sent); resumed: {size - held} bytes in {phase.wall:.1f} s")

        job_id = first.url.rsplit("/", 1)[1]
        waited = time.monotonic()
        job = wait_job(api, job_id, time.monotonic() + 1800)
        converted = time.monotonic() - waited
        proxy.close()
        return report(size, idle, rows, sent_first, held, again, job, converted)
    except Exception:
        for name, status in stack.exited():
            log(f"{name} exited with {status}:\n{tail(stack.log_path(name), 20)}")
        raise
    finally:
        stack.stop_all()


def report(size, idle, rows, sent_first, held, again, job, converted):
    mb = 1e6
    lines = [
        "## Resumable upload of a %.0f MB video interrupted at half (tuspy, 8 MiB PATCHes, nx-27017)"
        % (size / mb), "",
        "| phase | bytes through the proxy | file bytes it had to send | wall | MB/s | gateway peak RSS "
        "(VmHWM / sampled) |", "|---|---|---|---|---|---|"]
    for name, (phase, sent, needed) in rows.items():
        lines.append("| %s | %.1f MB | %s | %.1f s | %.0f | %.0f / %.0f MB |" % (
            name, sent / mb, "%.1f MB" % (needed / mb) if needed is not None else "-", phase.wall,
            sent / mb / phase.wall, phase.hwm or 0, phase.sampled or 0))
    interrupted = rows["first half"][0].wall + rows["resume"][0].wall
    lines += ["",
              "- cut after %.1f MB had been sent; the server held %.1f MB (%d bytes of the cut PATCH kept)"
              % (sent_first / mb, held / mb, held - held // PATCH_BYTES * PATCH_BYTES),
              "- **bytes sent again: %.2f MB** (everything through the proxy, HTTP headers included, minus "
              "the file); wall time interrupted + resumed %.1f s vs %.1f s straight"
              % (again / mb, interrupted, rows["straight"][0].wall),
              "- gateway RSS idle %.0f MB; job %s %.0f s after the last byte (%d polls answered 5xx)"
              % (idle or 0, job["status"], converted, job["unavailable"]), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=float, default=1e9, help="bytes of the generated video")
    parser.add_argument("--out", default=os.path.join(HERE, "results-tus.md"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-nice", action="store_true")
    parser.add_argument("--nx", default=NX_27017)
    parser.add_argument("--mongo-uri")
    parser.add_argument("--mongo-db", default="mp3svc_bench")
    parser.add_argument("--amqp-uri")
    parser.add_argument("--rabbit-mgmt", default="http://guest:guest@127.0.0.1:15672")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="mp3bench-tus-")
    try:
        text = run(args, workdir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(text)
    with open(args.out, "w") as handle:
        handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
