#!/usr/bin/env python3
"""End-to-end benchmark of the video-to-MP3 service (`make bench`).

Starts its own stack as subprocesses (nx-27017 on a free port with a temporary data dir, a fresh
RabbitMQ vhost on the local broker, an aiosmtpd sink, and the four Nameko services run exactly as
in production: `nameko run --config config/<svc>.yaml services.<svc>.service`), then measures in one
run:

  * baselines: raw ffmpeg file->file (`ffmpeg -i in.mp4 -vn -c:a libmp3lame -q:a 2 out.mp3`) and a
    raw pymongo GridFS put (and get) of the same file into the same MongoDB the services use;
  * per video (1, 10, 60 minutes of 720p): upload -> job done, upload MB/s, converting -> done,
    download MB/s, with a check of the MP3 (duration, Content-Length, file name);
  * peak RSS of the gateway and converter processes (and the ffmpeg child) while the ~1 GB
    60-minute video goes through (VmHWM reset through /proc/<pid>/clear_refs before the upload,
    plus a 10 Hz VmRSS sampler);
  * jobs per minute on a batch (6 x 1-minute videos) with 1 and 2 converter processes
    (CONVERTER_WORKERS=1, so one ffmpeg per process), and with 1 process x 2 workers (default);
  * the tutorial's moviepy path (VideoFileClip(in).audio.write_audiofile(out.mp3)) on the
    10-minute file, in its own venv bench/.venv-moviepy (created on first use).

Prints a markdown report with the ratios against the targets and writes it to bench/results.md
(or --out).  Flags: --quick (only the 1-minute video, small batch, no moviepy), --only NAME
(one of: 1m 10m 60m rss scale moviepy baseline; repeatable).  Everything CPU-heavy runs under
`nice -n 19` unless --no-nice (baselines and services alike, so ratios stay fair).

Only the standard library and the project's own venv (pymongo) are needed.
"""
import argparse
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_media  # noqa: E402

VIDEOS = {"1m": "clip-1m", "10m": "clip-10m", "60m": "clip-60m"}
RSS_VIDEO = "60m"            # the ~1 GB one
MOVIEPY_VIDEO = "10m"
TARGET_VIDEO = "10m"
SERVICES = ("auth", "notification", "gateway", "converter")
MOVIEPY_PIN = "moviepy==2.2.1"

TARGETS = {
    "upload_done_ratio": 1.25,   # upload->done <= 1.25 x (raw ffmpeg + raw GridFS put), 10-min video
    "convert_ratio": 1.10,       # converting->done <= 1.1 x raw ffmpeg
    "rss_mb": 150.0,             # gateway and converter each < 150 MB with the 1 GB video
    "scale_ratio": 1.8,          # 2 converters >= 1.8 x jobs/min of one
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------- /proc helpers

def proc_status(pid, key):
    """A kB field of /proc/<pid>/status in MB, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pid, part="all"):
    """utime+stime of a process ("self"), of the children it has waited for, e.g. ffmpeg
    ("children"), or both ("all")."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    lo, hi = {"self": (11, 13), "children": (13, 15), "all": (11, 15)}[part]
    return sum(int(x) for x in fields[lo:hi]) / tick


def reset_hwm(pid):
    """Reset VmHWM (peak RSS) of a process: `echo 5 > /proc/<pid>/clear_refs` (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Samples VmRSS of named processes (and their descendants, e.g. ffmpeg) every `interval` s."""

    def __init__(self, roots, interval=0.1):
        super().__init__(daemon=True)
        self.roots = roots          # name -> list of pids
        self.interval = interval
        self.peak = {}              # name -> max VmRSS of one root process (MB)
        self.peak_children = {}     # name -> max VmRSS of one descendant (MB)
        self.peak_tree = {}         # name -> max sum over a root and its descendants (MB)
        self.phase = None
        self.phase_peak = {}        # (name, phase) -> max VmRSS of one root process (MB)
        self._halt = threading.Event()

    def mark(self, phase):
        self.phase = phase

    def run(self):
        while not self._halt.is_set():
            for name, pids in self.roots.items():
                for pid in pids:
                    rss = proc_status(pid, "VmRSS")
                    if rss is None:
                        continue
                    self.peak[name] = max(self.peak.get(name, 0), rss)
                    key = (name, self.phase)
                    self.phase_peak[key] = max(self.phase_peak.get(key, 0), rss)
                    tree = rss
                    for c in descendants(pid):
                        crss = proc_status(c, "VmRSS") or 0
                        tree += crss
                        self.peak_children[name] = max(self.peak_children.get(name, 0), crss)
                    self.peak_tree[name] = max(self.peak_tree.get(name, 0), tree)
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)


def timed_cmd(argv, nice=True, sample=True, **kw):
    """Run a command under /usr/bin/time; return wall, CPU (user+sys of the command and the
    children it waited for), max RSS of its largest process and, when sampled (20 Hz), the peak
    summed RSS of the whole process tree.

    /usr/bin/time (not os.wait4 from here) because Linux carries the RSS high-water mark of the
    forking process over exec: a child forked from this (large) Python process would report
    this process's peak as its own."""
    fd, tfile = tempfile.mkstemp(prefix="time-")
    os.close(fd)
    full = ["/usr/bin/time", "-o", tfile, "-f", "%e %U %S %M %x"] + list(argv)
    if nice:
        full = ["nice", "-n", "19"] + full
    t0 = time.monotonic()
    p = subprocess.Popen(full, **kw)
    sampler = None
    if sample:
        sampler = RssSampler({"tree": [p.pid]}, 0.05)
        sampler.start()
    p.wait()
    wall = time.monotonic() - t0
    if sampler:
        sampler.stop()
    try:
        with open(tfile) as f:
            line = f.read().strip().splitlines()[-1].split()
        e, u, s_, m, x = float(line[0]), float(line[1]), float(line[2]), int(line[3]), int(line[4])
    finally:
        os.remove(tfile)
    return {"rc": x if p.returncode == 0 else p.returncode, "wall": wall, "time_wall": e,
            "cpu": u + s_, "maxrss_mb": m / 1024,
            "tree_mb": (sampler.peak_tree.get("tree") if sampler else None)}


# ---------------------------------------------------------------- HTTP client

class Api:
    def __init__(self, host, port, timeout=600):
        self.host, self.port, self.timeout = host, port, timeout
        self.token = None

    def _conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _headers(self, extra=None):
        h = {}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def call(self, method, path, body=None, headers=None):
        c = self._conn()
        try:
            c.request(method, path, body=body, headers=self._headers(headers))
            r = c.getresponse()
            data = r.read()
            try:
                payload = json.loads(data) if data else None
            except ValueError:
                payload = data[:200]
            return r.status, payload, dict(r.getheaders())
        finally:
            c.close()

    def json(self, method, path, obj):
        return self.call(method, path, json.dumps(obj).encode(),
                         {"Content-Type": "application/json"})

    def login(self, email, password):
        basic = base64.b64encode(f"{email}:{password}".encode()).decode()
        c = self._conn()
        try:
            c.request("POST", "/login", headers={"Authorization": f"Basic {basic}",
                                                 "Content-Length": "0"})
            r = c.getresponse()
            payload = json.loads(r.read() or b"null")
        finally:
            c.close()
        if r.status != 200:
            raise RuntimeError(f"login: {r.status} {payload}")
        self.token = payload["token"]

    def upload(self, path, filename=None, chunk=1 << 20):
        """Streamed multipart/form-data upload (field `file`); never holds the file in memory."""
        filename = filename or os.path.basename(path)
        boundary = "----bench" + secrets.token_hex(12)
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{filename}\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = os.path.getsize(path)
        length = len(head) + size + len(tail)

        def body():
            yield head
            with open(path, "rb") as f:
                while True:
                    b = f.read(chunk)
                    if not b:
                        break
                    yield b
            yield tail

        c = self._conn()
        try:
            t0 = time.monotonic()
            c.request("POST", "/upload", body=body(), headers=self._headers({
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length)}))
            r = c.getresponse()
            data = r.read()
            elapsed = time.monotonic() - t0
        finally:
            c.close()
        try:
            payload = json.loads(data)
        except ValueError:
            payload = data[:200]
        return r.status, payload, elapsed

    def download(self, fid, dest=None, chunk=1 << 20):
        c = self._conn()
        n = 0
        try:
            t0 = time.monotonic()
            c.request("GET", "/download?" + urllib.parse.urlencode({"fid": fid}),
                      headers=self._headers())
            r = c.getresponse()
            headers = dict(r.getheaders())
            out = open(dest, "wb") if dest else None
            try:
                while True:
                    b = r.read(chunk)
                    if not b:
                        break
                    n += len(b)
                    if out:
                        out.write(b)
            finally:
                if out:
                    out.close()
            elapsed = time.monotonic() - t0
        finally:
            c.close()
        return r.status, headers, n, elapsed


def parse_ts(value):
    """Job timestamps: ISO 8601 strings or epoch numbers -> epoch seconds (or None)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value / 1000 if value > 1e11 else value)
    try:
        d = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


# ---------------------------------------------------------------- the stack

class Stack:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.procs = {}           # name -> Popen
        self.logs = {}
        self.vhost = None
        self.env = None
        self.converters = []
        self.frozen = set()

    # -- backing services
    def _nx_binary(self):
        for cand in (self.args.nx, os.path.join(ROOT, ".venv-mongo", "bin", "nx-27017"),
                     shutil.which("nx-27017")):
            if cand and os.path.exists(cand):
                return cand
        raise SystemExit("nx-27017 not found: create .venv-mongo (see Makefile) or pass --nx PATH")

    def _spawn(self, name, argv, env=None, nice=True):
        logf = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        if nice and not self.args.no_nice:
            argv = ["nice", "-n", "19"] + argv
        p = subprocess.Popen(argv, cwd=ROOT, env=env or os.environ.copy(), stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs[name] = p
        self.logs[name] = logf.name
        return p

    def _mgmt(self, method, path, body=None):
        url = self.args.rabbit_mgmt.rstrip("/") + path
        parts = urllib.parse.urlsplit(url)
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        req = urllib.request.Request(
            urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
            method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"})
        cred = base64.b64encode(
            f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
            return json.loads(data) if data else None

    def start_backing(self):
        a = self.args
        # MongoDB wire protocol server
        if a.mongo_uri:
            mongo_uri = a.mongo_uri
        else:
            port = free_port()
            self._spawn("nx-27017", [self._nx_binary(), "--data-dir", os.path.join(self.workdir, "mongo"),
                                     "-p", str(port), "--log-file", os.path.join(self.workdir, "nx.log"),
                                     "--pid-file", os.path.join(self.workdir, "nx.pid")])
            if not wait_port(port, time.monotonic() + 30):
                raise SystemExit("nx-27017 did not listen within 30 s")
            mongo_uri = f"mongodb://127.0.0.1:{port}/"
        # RabbitMQ: a fresh vhost so queues of other runs/tests do not interfere
        if a.amqp_uri:
            amqp_uri = a.amqp_uri
        else:
            self.vhost = "bench-" + secrets.token_hex(4)
            try:
                self._mgmt("PUT", f"/api/vhosts/{self.vhost}", {})
                self._mgmt("PUT", f"/api/permissions/{self.vhost}/guest",
                           {"configure": ".*", "write": ".*", "read": ".*"})
                amqp_uri = f"pyamqp://guest:guest@127.0.0.1:5672/{self.vhost}"
            except (urllib.error.URLError, OSError) as e:
                log(f"RabbitMQ management API unavailable ({e}); using the default vhost")
                self.vhost = None
                amqp_uri = "pyamqp://guest:guest@127.0.0.1:5672/"
        # SMTP sink
        smtp_port = free_port()
        self._spawn("smtp", [os.path.join(ROOT, ".venv", "bin", "python"), "-m", "aiosmtpd", "-n",
                             "-l", f"127.0.0.1:{smtp_port}", "-c", "aiosmtpd.handlers.Sink"],
                    nice=False)
        if not wait_port(smtp_port, time.monotonic() + 20):
            raise SystemExit("SMTP sink did not start")
        self.gw_port = free_port()
        self.env = dict(os.environ,
                        AMQP_URI=amqp_uri, MONGO_URI=mongo_uri, MONGO_DB=a.mongo_db,
                        AUTH_DB_URI=f"sqlite:///{os.path.join(self.workdir, 'auth.db')}",
                        SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_port), SMTP_STARTTLS="false",
                        SMTP_USERNAME="", SMTP_PASSWORD="", MAIL_FROM="bench@example.com",
                        GATEWAY_ADDRESS=f"127.0.0.1:{self.gw_port}",
                        PUBLIC_URL=f"http://127.0.0.1:{self.gw_port}",
                        JWT_SECRET=secrets.token_urlsafe(48),
                        ALLOW_REGISTRATION="true", PYTHONUNBUFFERED="1",
                        HEARTBEAT_DIR=self.workdir, TMPDIR=self.workdir)
        self.env.pop("MAX_UPLOAD_BYTES", None)
        log(f"backing services: MONGO_URI={mongo_uri} AMQP vhost={self.vhost or '/'} smtp={smtp_port}")

    # -- nameko services
    def _service_argv(self, svc):
        nameko = os.path.join(ROOT, ".venv", "bin", "nameko")
        return [nameko, "run", "--config", f"config/{svc}.yaml", f"services.{svc}.service"]

    def start_service(self, svc, name=None, workers=None):
        env = dict(self.env)
        if workers is not None:
            env["CONVERTER_WORKERS"] = str(workers)
        return self._spawn(name or svc, self._service_argv(svc), env=env)

    def start_services(self, converters=1, workers=2):
        for svc in SERVICES:
            if svc == "converter":
                self.start_converters(converters, workers)
            else:
                self.start_service(svc)
        self.wait_healthy()

    def start_converters(self, n, workers):
        self.stop_converters()
        for i in range(n):
            name = f"converter{i + 1}"
            self.start_service("converter", name, workers)
            self.converters.append(name)

    def stop_converters(self):
        for name in self.converters:
            self.stop(name)
        self.converters = []

    def pids(self, name):
        p = self.procs.get(name)
        return [p.pid] if p and p.poll() is None else []

    def service_pids(self, module):
        """pids of our own service processes whose command line names the module."""
        out = []
        for name, p in self.procs.items():
            if p.poll() is None and module in proc_cmdline(p.pid):
                out.append(p.pid)
        return out

    def wait_healthy(self, timeout=120):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"{name} exited with {p.returncode}; see {self.logs[name]}:\n"
                                     + tail(self.logs[name]))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.gw_port, timeout=5)
                c.request("GET", "/healthz")
                r = c.getresponse()
                last = (r.status, r.read()[:300])
                c.close()
                if r.status == 200:
                    return
            except OSError as e:
                last = e
            time.sleep(0.5)
        raise SystemExit(f"gateway not healthy within {timeout} s: {last}")

    def queue_consumers(self, queue):
        if not self.vhost:
            return None
        try:
            q = self._mgmt("GET", f"/api/queues/{self.vhost}/{urllib.parse.quote(queue, safe='')}")
            return q.get("consumers")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def stop(self, name, timeout=15):
        p = self.procs.pop(name, None)
        if not p:
            return
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)   # in case a batch froze it
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {timeout} s after SIGTERM; killing")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def stop_all(self):
        for name in reversed(list(self.procs)):
            self.stop(name)
        if self.vhost:
            with contextlib.suppress(Exception):
                self._mgmt("DELETE", f"/api/vhosts/{self.vhost}")


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------- measurements

def ffmpeg_baseline(src, workdir, nice):
    dst = os.path.join(workdir, "raw.mp3")
    r = timed_cmd([shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-hide_banner", "-loglevel",
                   "error", "-y", "-i", src, "-vn", "-c:a", "libmp3lame", "-q:a", "2", dst],
                  nice=nice)
    r["mp3_bytes"] = os.path.getsize(dst) if os.path.exists(dst) else 0
    with contextlib.suppress(OSError):
        os.remove(dst)
    if r["rc"] != 0:
        raise RuntimeError(f"raw ffmpeg failed on {src}")
    return r


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
        for label, kw in (("", {}), ("_1m", {"chunk_size_bytes": 1 << 20})):
            bucket = gridfs.GridFSBucket(db, bucket_name="bench_raw" + label.replace("_", ""), **kw)
            with open(src, "rb") as f:
                t0 = time.monotonic()
                fid = bucket.upload_from_stream(os.path.basename(src), f)
                put = time.monotonic() - t0
            out["put" + label] = put
            out["put_mbs" + label] = size / 1e6 / put
            if not label:
                t0 = time.monotonic()
                n = 0
                try:
                    with bucket.open_download_stream(fid) as g:
                        while True:
                            b = g.read(1 << 20)
                            if not b:
                                break
                            n += len(b)
                    out["get_mode"] = "GridOut"
                except Exception as e:  # pymongo refuses an oversized reply from the server
                    out["get_mode"] = f"16 chunks/query ({type(e).__name__})"
                    t0 = time.monotonic()
                    n = 0
                    chunks = db["bench_raw.chunks"]
                    k = 0
                    while True:
                        docs = list(chunks.find({"files_id": fid, "n": {"$gte": k, "$lt": k + 16}},
                                                sort=[("n", 1)], batch_size=16))
                        if not docs:
                            break
                        n += sum(len(d["data"]) for d in docs)
                        k += len(docs)
                get = time.monotonic() - t0
                if n != size:
                    raise RuntimeError(f"GridFS get returned {n} of {size} bytes")
                out["get"], out["get_mbs"] = get, size / 1e6 / get
            bucket.delete(fid)
        return out
    finally:
        client.close()


def poll_job(api, job_id, deadline, interval=0.5):
    """Poll GET /jobs/<id> until done/failed; return timings (monotonic + server timestamps)."""
    seen = {}
    server = {}
    last = None
    while time.monotonic() < deadline:
        status, job, _ = api.call("GET", f"/jobs/{job_id}")
        now = time.monotonic()
        if status != 200:
            raise RuntimeError(f"GET /jobs/{job_id}: {status} {job}")
        st = job.get("status")
        if st not in seen:
            seen[st] = now
            server[st] = parse_ts(job.get("updated_at"))
        last = job
        if st in ("done", "failed"):
            return job, seen, server
        time.sleep(interval)
    raise RuntimeError(f"job {job_id} not finished before the deadline; last: {last}")


def probe_duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "default=nw=1:nk=1", path], capture_output=True, text=True).stdout
    try:
        return float(out.strip())
    except ValueError:
        return None


def run_video(api, media, workdir, bugs, sampler_roots=None, reset_pids=()):
    """Upload -> poll -> download one video; optional RSS sampling during the whole flow."""
    path, size, seconds = media["path"], media["size"], media["seconds"]
    sampler = None
    hwm_reset = {pid: reset_hwm(pid) for pid in reset_pids}
    if sampler_roots:
        sampler = RssSampler(sampler_roots)
        sampler.start()
    if sampler:
        sampler.mark("upload")
    t0 = time.monotonic()
    t0_wall = time.time()
    status, payload, up_s = api.upload(path)
    if sampler:
        sampler.mark("convert")
    if status != 202:
        if sampler:
            sampler.stop()
        raise RuntimeError(f"upload of {os.path.basename(path)}: {status} {payload}")
    if not (isinstance(payload, dict) and payload.get("status") == "queued" and payload.get("job_id")):
        bugs.append(f"POST /upload answered 202 with {payload!r} (contract: job_id, status=queued)")
    job_id = payload["job_id"]
    deadline = time.monotonic() + 300 + 1.0 * seconds
    job, seen, server = poll_job(api, job_id, deadline)
    t_done = seen.get(job["status"])
    upload_done = t_done - t0
    if server.get(job["status"]) is not None:   # the job record's clock: no polling error
        upload_done = server[job["status"]] - t0_wall
    res = {"job_id": job_id, "size": size, "upload_s": up_s, "upload_mbs": size / 1e6 / up_s,
           "upload_done_s": upload_done, "status": job["status"], "error": job.get("error")}
    if "converting" in seen:
        res["convert_poll_s"] = t_done - seen["converting"]
        a, b = server.get("converting"), server.get(job["status"])
        if a is not None and b is not None and b >= a:
            res["convert_srv_s"] = b - a
    else:
        res["convert_poll_s"] = None
        log(f"job {job_id}: 'converting' never observed (poll interval 0.1 s)")
    res["queue_wait_s"] = (seen.get("converting", t_done) - t0) - up_s
    if job["status"] != "done":
        if sampler:
            sampler.stop()
        raise RuntimeError(f"job {job_id} failed: {job.get('error')}")
    # download
    dest = os.path.join(workdir, "dl.mp3")
    if sampler:
        sampler.mark("download")
    dstatus, headers, n, dl_s = api.download(job["mp3_id"], dest)
    if sampler:
        sampler.stop()
        res["rss"] = {"sampled": dict(sampler.peak), "children": dict(sampler.peak_children),
                      "phases": {f"{n}/{ph}": v for (n, ph), v in sampler.phase_peak.items()}}
    res["hwm"] = {pid: (proc_status(pid, "VmHWM") if ok else None) for pid, ok in hwm_reset.items()}
    if dstatus != 200:
        raise RuntimeError(f"download {job['mp3_id']}: {dstatus}")
    res.update(download_s=dl_s, download_mbs=n / 1e6 / dl_s, mp3_bytes=n)
    # contract checks (cheap); anything odd goes into the report's "observations"
    h = {k.lower(): v for k, v in headers.items()}
    if h.get("content-length") and int(h["content-length"]) != n:
        bugs.append(f"download of {job['mp3_id']}: Content-Length {h['content-length']} but {n} bytes")
    if not h.get("content-type", "").startswith("audio/mpeg"):
        bugs.append(f"download Content-Type is {h.get('content-type')!r}, contract says audio/mpeg")
    want = os.path.splitext(os.path.basename(path))[0] + ".mp3"
    if want not in h.get("content-disposition", ""):
        bugs.append(f"download Content-Disposition {h.get('content-disposition')!r}, expected {want}")
    dur = probe_duration(dest)
    res["mp3_duration"] = dur
    if dur is None or abs(dur - seconds) > 2:
        bugs.append(f"MP3 of {os.path.basename(path)} lasts {dur} s, the video {seconds} s")
    with contextlib.suppress(OSError):
        os.remove(dest)
    return res


def run_batch(stack, api, media, n_jobs, converters, workers, bugs):
    """Throughput of `converters` processes x `workers` on a batch of n_jobs.

    The converters are started and waited for (all of them consuming the queue), then frozen
    with SIGSTOP while the batch is uploaded, and released together with SIGCONT: the clock runs
    from SIGCONT to the last job seen `done`, so neither the uploads nor the services' start-up
    are counted, and every converter gets the same head start."""
    stack.start_converters(converters, workers)
    queue = "evt-gateway-video_uploaded--converter.handle_video_uploaded"
    deadline = time.monotonic() + 90
    while True:
        for name in stack.converters:
            p = stack.procs[name]
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited {p.returncode}:\n" + tail(stack.logs[name]))
        c = stack.queue_consumers(queue)
        if c is None:          # no management API: give them time
            time.sleep(10)
            break
        if c >= converters:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {c} of {converters} converters consume {queue}")
        time.sleep(0.2)
    pids = [stack.procs[name].pid for name in stack.converters]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    stack.frozen = set(pids)
    try:
        jobs = []
        for i in range(n_jobs):
            status, payload, _ = api.upload(media["path"], filename=f"batch{i}.mp4")
            if status != 202:
                raise RuntimeError(f"batch upload {i}: {status} {payload}")
            jobs.append(payload["job_id"])
        time.sleep(1.0)        # let the broker route the events
    finally:
        groups = {"converter python": (pids, "self"), "ffmpeg+ffprobe": (pids, "children"),
                  "nx-27017": stack.pids("nx-27017"),
                  "gateway": stack.service_pids("services.gateway.service"),
                  "auth+notification": stack.service_pids("services.auth.service")
                  + stack.service_pids("services.notification.service")}
        groups = {g: (v if isinstance(v, tuple) else (v, "all")) for g, v in groups.items()}
        cpu0 = {g: sum(cpu_seconds(p, part) or 0 for p in ps) for g, (ps, part) in groups.items()}
        load0 = os.times()
        t0 = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        stack.frozen = set()
    conv, done = {}, {}
    deadline = time.monotonic() + 120 + n_jobs * (10 + 2 * media["seconds"])
    use_list = True
    while len(done) < n_jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch not finished: {len(done)}/{n_jobs} done")
        # one GET /jobs per round when the gateway has it, so polling costs little CPU; the
        # times come from the job records (updated_at when converting began / when done)
        listing = None
        if use_list:
            status, body, _ = api.call("GET", "/jobs")
            if status == 200 and isinstance(body, dict) and isinstance(body.get("jobs"), list):
                listing = {j.get("job_id"): j for j in body["jobs"]}
            else:
                use_list = False
        for j in jobs:
            if j in done:
                continue
            if listing is not None:
                job = listing.get(j) or {}
            else:
                status, job, _ = api.call("GET", f"/jobs/{j}")
                job = job if status == 200 else {}
            st = job.get("status")
            ts = parse_ts(job.get("updated_at"))
            if st == "converting" and j not in conv:
                conv[j] = ts
            if st in ("done", "failed"):
                done[j] = (st, ts)
        time.sleep(0.25)
    failed = [j for j, (st, _) in done.items() if st != "done"]
    if failed:
        bugs.append(f"batch: {len(failed)} of {n_jobs} jobs failed")
    span = max(t for _, t in done.values()) - t0
    cpu = {g: sum(cpu_seconds(p, part) or 0 for p in ps) - cpu0[g]
           for g, (ps, part) in groups.items()}
    mine = os.times()
    cpu["bench client"] = (mine.user + mine.system) - (load0.user + load0.system)
    per_job = [done[j][1] - conv[j] for j in jobs if j in conv and conv[j] is not None]
    # most jobs seen `converting` at the same time
    known = [j for j in conv if conv[j] is not None]
    events = sorted([(done[j][1], -1) for j in known] + [(conv[j], 1) for j in known])
    running = peak = 0
    for _, d in events:
        running += d
        peak = max(peak, running)
    return {"converters": converters, "workers": workers, "jobs": n_jobs, "span_s": span,
            "jobs_min": n_jobs / span * 60,
            "per_job_s": statistics.median(per_job) if per_job else None,
            "max_parallel": peak, "cpu": cpu, "failed": len(failed)}


def moviepy_row(src, nice, venv):
    """The tutorial's path, in its own venv (created on first use)."""
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        log(f"creating {venv} with {MOVIEPY_PIN}")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", MOVIEPY_PIN], check=True)
    with tempfile.TemporaryDirectory(prefix="mpy-") as tmp:
        dst = os.path.join(tmp, "out.mp3")
        code = ("import sys\n"
                "try:\n from moviepy import VideoFileClip\n"
                "except ImportError:\n from moviepy.editor import VideoFileClip\n"
                "clip = VideoFileClip(sys.argv[1])\n"
                "clip.audio.write_audiofile(sys.argv[2], logger=None)\n"
                "clip.close()\n")
        r = timed_cmd([py, "-c", code, src, dst], nice=nice)
        r["mp3_bytes"] = os.path.getsize(dst) if os.path.exists(dst) else 0
        ver = subprocess.run([py, "-c", "import importlib.metadata as m, imageio_ffmpeg as i; "
                              "print(m.version('moviepy'), i.get_ffmpeg_exe())"],
                             capture_output=True, text=True).stdout.strip()
        r["version"] = ver
    if r["rc"] != 0:
        raise RuntimeError("moviepy run failed")
    return r


# ---------------------------------------------------------------- report

def raw_ffmpeg_walls(b):
    if not b.get("ffmpeg"):
        return []
    return [b["ffmpeg"]["wall"]] + [r["wall"] for r in b.get("ffmpeg_after") or []]


def raw_ffmpeg_wall(b):
    """Median wall time of the raw ffmpeg runs (before, and after each service run)."""
    walls = raw_ffmpeg_walls(b)
    return statistics.median(walls) if walls else None


def combine(runs):
    """Median of each timing over repeated runs of one video; the first run's RSS data."""
    out = dict(runs[0])
    out["runs"] = len(runs)
    for key in ("upload_s", "upload_mbs", "upload_done_s", "convert_srv_s", "convert_poll_s",
                "queue_wait_s", "download_s", "download_mbs"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            out[key] = statistics.median(vals)
            out[key + "_all"] = vals
    return out


def fmt(v, spec=".2f", none="n/a"):
    return none if v is None else format(v, spec)


def verdict(ok):
    return "PASS" if ok else "MISS"


def report(R, args):
    L = []
    o = L.append
    o("# Benchmark results\n")
    o(f"Run {R['started']} on {os.uname().nodename} ({os.cpu_count()} cores); "
      f"load average before/after: {R['load_before']} / {R.get('load_after', 'n/a')}; "
      f"ffmpeg: {R.get('ffmpeg_version', '?')}; "
      f"{'everything under nice -n 19' if not args.no_nice else 'not niced'}.\n")
    if R.get("baseline"):
        o("## Baselines (same run, same MongoDB, services idle)\n")
        o("| video | size MB | raw ffmpeg wall s, median (min–max, runs) | CPU s "
          "| max RSS MB | raw GridFS put s | put MB/s "
          "| put MB/s, 1 MiB chunks | raw GridFS get MB/s |")
        o("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, b in R["baseline"].items():
            ff, gf = b["ffmpeg"], b["gridfs"]
            walls_l = raw_ffmpeg_walls(b)
            cpus_l = [ff["cpu"]] + [r["cpu"] for r in b.get("ffmpeg_after") or []]
            walls = (f"{statistics.median(walls_l):.2f} ({min(walls_l):.2f}–{max(walls_l):.2f}, "
                     f"n={len(walls_l)})" if len(walls_l) > 1 else f"{walls_l[0]:.2f}")
            cpus = f"{statistics.median(cpus_l):.2f}"
            o(f"| {name} | {b['size'] / 1e6:.1f} | {walls} | {cpus} | "
              f"{ff['maxrss_mb']:.0f} | {gf['put']:.2f} | {gf['put_mbs']:.0f} | "
              f"{gf['put_mbs_1m']:.0f} | {gf['get_mbs']:.0f}{'' if gf['get_mode'] == 'GridOut' else '*'} |")
        o("\nraw ffmpeg: `ffmpeg -i in.mp4 -vn -c:a libmp3lame -q:a 2 out.mp3`; put: pymongo "
          "`GridFSBucket(db).upload_from_stream()` (default 255 KiB chunks); get: "
          "`open_download_stream().read(1 MiB)` loop"
          + ("; * = GridOut refused the server's reply, read 16 chunks per query instead"
             if any(b["gridfs"]["get_mode"] != "GridOut" for b in R["baseline"].values()) else "")
          + ".\n")
    if R.get("videos"):
        o("## Through the service (one converter process, CONVERTER_WORKERS=2)\n")
        o("| video | size MB | upload s | upload MB/s | queued wait s | converting→done s "
          "| upload→done s | download MB/s | upload→done / (raw ffmpeg + raw put)¹ "
          "| converting→done / raw ffmpeg |")
        o("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, v in R["videos"].items():
            b = R["baseline"].get(name, {})
            ff, gf = b.get("ffmpeg"), b.get("gridfs")
            if v.get("failed"):
                o(f"| {name} | {v.get('size', 0) / 1e6:.1f} | FAILED: {v['failed']} | | | | | | | |")
                continue
            conv = v.get("convert_srv_s") or v.get("convert_poll_s")
            ffw = raw_ffmpeg_wall(b)
            r1 = v["upload_done_s"] / (ffw + gf["put"]) if ff and gf else None
            r2 = conv / ffw if conv and ff else None
            v["ratio_upload_done"], v["ratio_convert"] = r1, r2
            call = v.get("convert_srv_s_all") or []
            conv_txt = fmt(conv) + (f" ({min(call):.2f}–{max(call):.2f}, n={len(call)})"
                                    if len(call) > 1 else "")
            o(f"| {name} | {v['size'] / 1e6:.1f} | {v['upload_s']:.2f} | {v['upload_mbs']:.0f} | "
              f"{fmt(v['queue_wait_s'])} | {conv_txt} | {v['upload_done_s']:.2f} | "
              f"{v['download_mbs']:.0f} | {fmt(r1)} | {fmt(r2)} |")
        o("\nconverting→done: the job record's `updated_at` when it entered `converting` minus "
          "when it entered `done`; upload→done: from the first byte sent to the record's "
          "`updated_at` at `done` (same machine clock); GET /jobs/<id> polled every 0.5 s, so "
          "polling costs the services little CPU; queued wait = from the 202 to the first poll "
          "that saw `converting` (≤ 0.5 s resolution). Videos up to 10 minutes go through "
          "`--repeat` times (default 3) and every figure is the median; raw ffmpeg runs once "
          "before and once after each service run. ¹ raw ffmpeg = the median of those runs.\n")
    if R.get("rss"):
        r = R["rss"]
        o(f"## Peak RSS with the {r['video_mb']:.0f} MB video (upload, conversion, download)\n")
        o("| process | peak RSS MB (VmHWM after reset) | peak RSS MB (10 Hz sampling) | "
          "during upload | during conversion | during download | largest child MB (ffmpeg) |")
        o("|---|---:|---:|---:|---:|---:|---:|")
        for name, row in r["rows"].items():
            o(f"| {name} | {fmt(row.get('hwm'), '.0f')} | {fmt(row.get('sampled'), '.0f')} | "
              f"{fmt(row.get('upload'), '.0f')} | {fmt(row.get('convert'), '.0f')} | "
              f"{fmt(row.get('download'), '.0f')} | {fmt(row.get('child'), '.0f')} |")
        o("\nVmHWM reset with `echo 5 > /proc/<pid>/clear_refs` just before the upload and read "
          "after the download; the sampler reads VmRSS of the service processes (found by their "
          "command line) every 0.1 s.\n")
    if R.get("scale"):
        o(f"## Throughput: batch of {R['scale'][0]['jobs']} x {R['scale_video']}\n")
        groups = list(R["scale"][0].get("cpu", {}))
        o("| converter processes | CONVERTER_WORKERS | batch s (release → last done) | jobs/min "
          "| median converting→done per job s | most jobs converting at once | vs 1 process "
          "| CPU s: " + " / ".join(groups) + " | CPU used of 2 cores × batch s |")
        o("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        base = R["scale"][0]["jobs_min"]
        for s in R["scale"]:
            cpu = s.get("cpu", {})
            used = sum(cpu.values()) / ((os.cpu_count() or 2) * s["span_s"])
            o(f"| {s['converters']} | {s['workers']} | {s['span_s']:.2f} | {s['jobs_min']:.1f} | "
              f"{fmt(s['per_job_s'])} | {s.get('max_parallel', 'n/a')} | "
              f"{s['jobs_min'] / base:.2f} | "
              + " / ".join(f"{cpu.get(g, 0):.2f}" for g in groups) + f" | {used:.0%} |")
        o("\nThe converters are started and consuming, frozen (SIGSTOP) while the batch is "
          "uploaded, then released together (SIGCONT); the clock runs from the release to the "
          "last job seen `done`. CPU s: user+sys consumed during the batch (converter "
          "processes themselves, and their ffmpeg/ffprobe children; bench client = this harness polling GET /jobs; "
          "RabbitMQ not counted).\n")
    if R.get("moviepy"):
        m = R["moviepy"]
        ff = R.get("moviepy_ffmpeg") or R["baseline"].get(MOVIEPY_VIDEO, {}).get("ffmpeg")
        o(f"## Reference: the tutorial's moviepy path on {MOVIEPY_VIDEO}\n")
        o("| path | wall s | CPU s | peak RSS MB (largest process) | peak RSS MB (process tree) "
          "| MP3 MB |")
        o("|---|---:|---:|---:|---:|---:|")
        if ff:
            o(f"| raw ffmpeg -vn -q:a 2 (just before) | {ff['wall']:.2f} | {ff['cpu']:.2f} | "
              f"{ff['maxrss_mb']:.0f} | {fmt(ff.get('tree_mb'), '.0f')} | "
              f"{ff.get('mp3_bytes', 0) / 1e6:.1f} |")
        o(f"| moviepy {m['version'].split()[0]} VideoFileClip.audio.write_audiofile | "
          f"{m['wall']:.2f} | {m['cpu']:.2f} | {m['maxrss_mb']:.0f} | "
          f"{fmt(m.get('tree_mb'), '.0f')} | {m['mp3_bytes'] / 1e6:.1f} |")
        o(f"\n(moviepy uses imageio-ffmpeg's static ffmpeg: "
          f"`{os.path.relpath(m['version'].split()[-1], ROOT)}`; "
          "its default MP3 is libmp3lame at ffmpeg's default bitrate, not -q:a 2.)\n")
    # targets
    o("## Targets\n")
    o("| target | measured | verdict |")
    o("|---|---|---|")
    v = R.get("videos", {}).get(TARGET_VIDEO)
    if v and "ratio_upload_done" in v and v["ratio_upload_done"] is not None:
        o(f"| upload→done ≤ {TARGETS['upload_done_ratio']} × (raw ffmpeg + raw GridFS put), "
          f"{TARGET_VIDEO} | {v['ratio_upload_done']:.2f} × | "
          f"{verdict(v['ratio_upload_done'] <= TARGETS['upload_done_ratio'])} |")
    for name, v in R.get("videos", {}).items():
        if v.get("ratio_convert") is not None:
            o(f"| converting→done ≤ {TARGETS['convert_ratio']} × raw ffmpeg, {name} | "
              f"{v['ratio_convert']:.2f} × | {verdict(v['ratio_convert'] <= TARGETS['convert_ratio'])} |")
    if R.get("rss"):
        for name, row in R["rss"]["rows"].items():
            if name in ("gateway", "converter"):
                peak = max(x for x in (row.get("hwm"), row.get("sampled")) if x is not None)
                o(f"| {name} peak RSS < {TARGETS['rss_mb']:.0f} MB with the 1 GB video | "
                  f"{peak:.0f} MB | {verdict(peak < TARGETS['rss_mb'])} |")
    if R.get("scale") and len(R["scale"]) > 1:
        ratio = R["scale"][1]["jobs_min"] / R["scale"][0]["jobs_min"]
        o(f"| 2 converters ≥ {TARGETS['scale_ratio']} × jobs/min of 1 | {ratio:.2f} × | "
          f"{verdict(ratio >= TARGETS['scale_ratio'])} |")
    o("")
    if R.get("errors"):
        o("## Errors\n")
        for e in R["errors"]:
            o(f"- {e}")
        o("")
    if R.get("bugs"):
        o("## Observations (contract deviations seen during the run)\n")
        for b in dict.fromkeys(R["bugs"]):
            o(f"- {b}")
        o("")
    o(f"Reproduce: `make bench` (`.venv/bin/python bench/run.py{' ' + ' '.join(R['argv']) if R['argv'] else ''}`).")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1-minute video only, batch of 4, no moviepy")
    ap.add_argument("--only", action="append",
                    choices=["1m", "10m", "60m", "rss", "scale", "moviepy", "baseline"])
    ap.add_argument("--batch", type=int, help="jobs in the throughput batch (default 12, --quick 4)")
    ap.add_argument("--batch-video", default="1m", choices=sorted(VIDEOS),
                    help="video of the throughput batch (default 1m)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="service runs of the 1- and 10-minute videos (median; default 3)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"))
    ap.add_argument("--no-nice", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir and logs")
    ap.add_argument("--nx", help="path of nx-27017 (default .venv-mongo/bin/nx-27017)")
    ap.add_argument("--mongo-uri", help="use this MongoDB instead of starting nx-27017")
    ap.add_argument("--mongo-db", default="mp3svc_bench")
    ap.add_argument("--amqp-uri", help="use this broker/vhost instead of a fresh vhost")
    ap.add_argument("--rabbit-mgmt", default="http://guest:guest@127.0.0.1:15672")
    ap.add_argument("--moviepy-venv", default=os.path.join(HERE, ".venv-moviepy"))
    args = ap.parse_args(argv)
    nice = not args.no_nice
    args.batch = args.batch if args.batch else (4 if args.quick else 12)

    sel = set(args.only or [])
    if args.quick:
        sel = sel or {"1m", "baseline", "scale"}
        args.batch = args.batch or 4
    if not sel:
        sel = {"1m", "10m", "60m", "rss", "scale", "moviepy", "baseline"}
    vids = [k for k in VIDEOS if k in sel]
    if "rss" in sel and RSS_VIDEO not in vids:
        vids.append(RSS_VIDEO)
    need_media = set(vids) | ({args.batch_video} if "scale" in sel else set()) | \
        (set(VIDEOS) if sel == {"baseline"} else set()) | \
        ({MOVIEPY_VIDEO} if "moviepy" in sel else set())
    need_stack = bool(vids or "scale" in sel or "baseline" in sel)

    R = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "bugs": [], "errors": [],
         "load_before": " ".join(open("/proc/loadavg").read().split()[:3]),
         "argv": argv if argv is not None else sys.argv[1:], "baseline": {}, "videos": {},
         "scale_video": VIDEOS[args.batch_video]}
    R["ffmpeg_version"] = subprocess.run(["ffmpeg", "-version"], capture_output=True,
                                         text=True).stdout.split("\n")[0].split(" Copyright")[0]
    t_gen = time.monotonic()
    media = gen_media.ensure([VIDEOS[k] for k in sorted(need_media)], log=log)
    log(f"media ready in {time.monotonic() - t_gen:.1f} s")

    workdir = tempfile.mkdtemp(prefix="mp3bench-")
    stack = Stack(args, workdir)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if need_stack:
            stack.start_backing()
            if vids or "scale" in sel:
                stack.start_services(converters=1, workers=2)
                log(f"stack healthy at http://127.0.0.1:{stack.gw_port}")
                api = Api("127.0.0.1", stack.gw_port)
                email = f"bench-{secrets.token_hex(4)}@example.com"
                password = secrets.token_urlsafe(12)
                st, body, _ = api.json("POST", "/register", {"email": email, "password": password})
                if st != 201:
                    raise RuntimeError(f"register: {st} {body}")
                api.login(email, password)
            # baselines, same MongoDB, idle services
            for k in (vids or [k for k in VIDEOS if k in need_media] or ["1m"]) \
                    if "baseline" in sel else []:
                m = media[VIDEOS[k]]
                log(f"baseline {k}: raw ffmpeg + raw GridFS put/get")
                R["baseline"][k] = {
                    "size": m["size"],
                    "ffmpeg": ffmpeg_baseline(m["path"], workdir, nice),
                    "gridfs": gridfs_baseline(stack.env["MONGO_URI"], args.mongo_db, m["path"])}
            for k in vids:
                m = media[VIDEOS[k]]
                roots = reset = None
                if k == RSS_VIDEO and "rss" in sel:
                    roots = {"gateway": stack.service_pids("services.gateway.service"),
                             "converter": stack.service_pids("services.converter.service"),
                             "nx-27017": stack.pids("nx-27017")}
                    reset = [p for pids in roots.values() for p in pids]
                reps = 1 if k == RSS_VIDEO else max(1, args.repeat)
                runs = []
                for rep in range(reps):
                    log(f"video {k}: upload -> done -> download ({rep + 1}/{reps})")
                    try:
                        runs.append(run_video(api, m, workdir, R["bugs"], roots if rep == 0 else None,
                                              (reset or ()) if rep == 0 else ()))
                    except RuntimeError as e:
                        R["errors"].append(f"{k}: {e}")
                        log(f"video {k} FAILED: {e}")
                        break
                    if k in R["baseline"]:
                        # raw ffmpeg again right after each service run: the machine's speed
                        # drifts (other work, a shared physical core); ratios use the median
                        R["baseline"][k].setdefault("ffmpeg_after", []).append(
                            ffmpeg_baseline(m["path"], workdir, nice))
                if not runs:
                    R["videos"][k] = {"failed": R["errors"][-1], "size": m["size"]}
                    continue
                res = combine(runs)
                R["videos"][k] = res
                log(f"video {k}: {json.dumps({x: y for x, y in res.items() if x not in ('rss', 'hwm')}, default=str)}")
                if roots:
                    rows = {}
                    for name, pids in roots.items():
                        hw = [res["hwm"].get(p) for p in pids if res["hwm"].get(p) is not None]
                        ph = res["rss"]["phases"]
                        rows[name] = {"hwm": max(hw) if hw else None,
                                      "sampled": res["rss"]["sampled"].get(name),
                                      "child": res["rss"]["children"].get(name),
                                      "upload": ph.get(f"{name}/upload"),
                                      "convert": ph.get(f"{name}/convert"),
                                      "download": ph.get(f"{name}/download")}
                    R["rss"] = {"video_mb": m["size"] / 1e6, "rows": rows}
            if "scale" in sel:
                for conv, workers in ((1, 1), (2, 1), (1, 2)):
                    log(f"batch: {args.batch} x {args.batch_video} with {conv} converter(s) x "
                        f"{workers} worker(s)")
                    try:
                        R.setdefault("scale", []).append(
                            run_batch(stack, api, media[VIDEOS[args.batch_video]], args.batch,
                                      conv, workers,
                                      R["bugs"]))
                        log(f"  -> {R['scale'][-1]}")
                    except RuntimeError as e:
                        R["errors"].append(f"batch {conv}x{workers}: {e}")
                        break
        if "moviepy" in sel:
            stack.stop_all()
            src = media[VIDEOS[MOVIEPY_VIDEO]]["path"]
            R["moviepy_ffmpeg"] = ffmpeg_baseline(src, workdir, nice)   # right before moviepy
            log("moviepy reference row")
            try:
                R["moviepy"] = moviepy_row(src, nice, args.moviepy_venv)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                R["errors"].append(f"moviepy: {e}")
    except KeyboardInterrupt:
        R["errors"].append("interrupted")
    except (Exception, SystemExit) as e:  # report what was measured so far, with the error
        import traceback
        R["errors"].append(f"{type(e).__name__}: {e}")
        log("ERROR: " + traceback.format_exc())
    finally:
        for name, p in list(stack.procs.items()):
            if p.poll() is not None and name != "smtp":
                R["errors"].append(f"{name} had exited with {p.returncode}; log tail:\n```\n"
                                   + tail(stack.logs[name], 15) + "```")
        stack.stop_all()
        R["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
        if args.keep or R["errors"]:
            log(f"kept {workdir} (service logs, data)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(R, args)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(R, f, indent=1, default=str)
    log(f"wrote {args.out}")
    return 1 if R["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
