"""Test helpers: ports, waiting on conditions with deadlines, real media, a real SMTP sink."""
import email
import email.policy
import hashlib
import mailbox
import os
import signal
import subprocess

from devtools.stack import Stack, clean_env, free_port, port_open, wait_for_port, wait_until  # noqa: F401

FFMPEG = os.environ.get("FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("FFPROBE", "ffprobe")


def sigint_default():
    """A `preexec_fn` for a program a test interrupts: SIGINT at its default, as a person's terminal
    leaves it, even when this test run inherited it ignored (started with `&` by a script: the shell
    has background jobs ignore SIGINT, Python then installs no KeyboardInterrupt, and Ctrl-C is lost)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def gone(pid):
    """True once `pid` no longer runs (exited, or a zombie waiting for init)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def cmdline(pid):
    """The argv `pid` runs ([] once it is gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [part.decode() for part in handle.read().split(b"\0") if part]
    except FileNotFoundError:
        return []


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
        """The file `name` made by ffmpeg as asked, once a session. One folder per ffmpeg command
        line: the same name asked with other parameters is another file, whichever test asked
        first (tests upload a file under its name, so the name is kept)."""
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
        args += list(extra)
        folder = os.path.join(str(self.directory), hashlib.sha256(repr(args).encode()).hexdigest()[:16])
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            os.makedirs(folder, exist_ok=True)
            subprocess.run(args + [path], check=True)
        return path


class MailSink:
    """devtools.mailsink in a subprocess (started by devtools.stack): real SMTP in, Maildir out."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.port = free_port()
        self.stack = Stack(os.path.dirname(self.directory), clean_env())

    def start(self):
        self.stack.start_mail_sink(self.directory, self.port)

    def start_on(self, port):
        self.port = port
        self.start()

    def stop(self):
        self.stack.stop()

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
