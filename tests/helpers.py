"""Test helpers: ports, waiting on conditions with deadlines, real media, a real SMTP sink."""
import email
import email.policy
import mailbox
import os
import socket
import subprocess
import sys
import time

FFMPEG = os.environ.get("FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("FFPROBE", "ffprobe")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(condition, timeout=30, interval=0.1, message="condition"):
    """Poll `condition` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, message))
        time.sleep(interval)


def wait_for_port(host, port, timeout=30, proc=None):
    def ready():
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s before listening" % proc.returncode)
        return port_open(host, port)
    wait_until(ready, timeout, message="%s:%d to listen" % (host, port))


def ffmpeg_version():
    try:
        out = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout
        return out.split("\n", 1)[0]
    except OSError:
        return "missing"


def probe(path):
    """(format name, duration, audio codecs) of a media file, by ffprobe."""
    import json
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_name,"
         "codec_type", "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    audio = [s["codec_name"] for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    return info["format"]["format_name"], float(info["format"].get("duration", 0)), audio


class MediaFactory:
    def __init__(self, directory):
        self.directory = directory

    def video(self, name="clip.mp4", duration=3.0, audio=True, video=True, faststart=True,
              extra=(), size="320x240", rate=10, acodec=None):
        path = os.path.join(str(self.directory), name)
        if os.path.exists(path):
            return path
        args = [FFMPEG, "-v", "error", "-y"]
        if video:
            args += ["-f", "lavfi", "-i", "testsrc=size=%s:rate=%s:duration=%s" % (size, rate, duration)]
        if audio:
            args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=%s"
                     % duration]
        if video:
            args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        if audio:
            args += ["-c:a", acodec or ("flac" if name.endswith(".mkv") else "aac")]
        if name.endswith(".mp4") and faststart:
            args += ["-movflags", "+faststart"]
        args += list(extra) + [path]
        subprocess.run(args, check=True)
        return path


class MailSink:
    """services.mailsink in a subprocess: real SMTP in, Maildir out."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.mailsink", "--maildir", self.directory,
             "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port, timeout=20, proc=self.proc)

    def start_on(self, port):
        self.port = port
        self.start()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def config(self):
        return {"HOST": "127.0.0.1", "PORT": self.port}

    def messages(self):
        if not os.path.isdir(os.path.join(self.directory, "new")):
            return []
        box = mailbox.Maildir(self.directory, create=False)
        found = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                 for key in box.keys()]
        return sorted(found, key=lambda m: m["Date"] or "")

    def wait_for(self, count, timeout=60):
        return wait_until(lambda: (lambda ms: ms if len(ms) >= count else None)(self.messages()),
                          timeout, message="%d email(s)" % count)

    @staticmethod
    def text_of(message):
        return message.get_body(preferencelist=("plain",)).get_content()
