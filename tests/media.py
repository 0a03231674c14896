"""Media for the conversion-option tests, made by ffmpeg, and the checks run on the MP3s (ffprobe,
ffmpeg's ebur128, mutagen). A local file with the StoredFile interface stands in for GridFS."""
import io
import json
import os
import re
import subprocess

from tests.helpers import FFMPEG, FFPROBE

CHAPTERS = [(0.0, 2.0, "One"), (2.0, 4.0, "Two"), (4.0, 6.0, "Three")]
TAGS = {"title": "Clip Title", "artist": "Some Artist", "album": "The Album", "date": "2024",
        "genre": "Test", "comment": "hello"}
LOUD = "volume=7"  # lavfi's sine is 1/8 full scale (about -23 LUFS): this makes it about -6


class LocalStored(io.FileIO):
    """services.storage.gridio.StoredFile's interface (read/seek/tell/iter_range/length) over a
    local file; `fail_after` blocks makes iter_range raise that exception (a storage failure)."""

    def __init__(self, path, fail_after=None, error=None):
        super().__init__(path, "rb")
        self.length = os.path.getsize(path)
        self.fail_after = fail_after
        self.error = error

    def iter_range(self, start=0, end=None, block=1 << 20):
        end = self.length if end is None else min(end, self.length)
        self.seek(start)
        sent = 0
        while self.tell() < end:
            if self.fail_after is not None and sent >= self.fail_after:
                raise self.error
            yield self.read(min(block, end - self.tell()))
            sent += 1


def ffmetadata(tags, chapters):
    """An FFMETADATA1 text (escaping as ffmpeg documents: = ; # \\ and newline)."""
    def escape(text):
        return re.sub(r"([=;#\\\r\n])", r"\\\1", text)
    lines = [";FFMETADATA1"]
    for start, end, title in chapters:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", "START=%d" % (start * 1000),
                  "END=%d" % (end * 1000), "title=%s" % escape(title)]
    return "\n".join(lines) + "\n"


def make(directory, name, duration=6.0, tags=TAGS, chapters=CHAPTERS, picture=True, video=True,
         second_track=True, loud=True, faststart=True, size="160x120", noise=False):
    """An MP4 (or MKV) with container tags, chapters, an attached picture, a loud 440 Hz first audio
    track (44.1 kHz mono AAC) and a silent second one (48 kHz stereo). `noise` makes the video big
    (about 1 MB a second at 640x360)."""
    path = os.path.join(str(directory), name)
    if os.path.exists(path):
        return path
    meta = path + ".ffmeta"
    with open(meta, "w", encoding="utf-8") as out:
        out.write(ffmetadata(tags or {}, chapters or []))
    args = [FFMPEG, "-v", "error", "-y"]
    inputs, maps = 0, []
    if video:
        args += ["-f", "lavfi", "-i", "testsrc=size=%s:rate=10:duration=%s%s"
                 % (size, duration, ",noise=alls=80:allf=t" if noise else "")]
        maps += ["-map", "%d:v" % inputs]
        inputs += 1
    args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=%s%s"
             % (duration, "," + LOUD if loud else "")]
    maps += ["-map", "%d:a" % inputs]
    inputs += 1
    if second_track:
        args += ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo:d=%s" % duration]
        maps += ["-map", "%d:a" % inputs]
        inputs += 1
    args += ["-i", meta]
    meta_index = inputs
    inputs += 1
    if picture:
        args += ["-f", "lavfi", "-i", "color=c=red:size=900x700:rate=1:duration=1"]
        maps += ["-map", "%d:v" % inputs]
    args += maps + ["-map_metadata", str(meta_index), "-map_chapters", str(meta_index)]
    for key, value in (tags or {}).items():  # argv, not the metadata file: CR/LF arrive intact
        args += ["-metadata", "%s=%s" % (key, value)]
    if video:
        args += ["-c:v:0", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if picture:
        last = 1 if video else 0
        args += ["-c:v:%d" % last, "png", "-disposition:v:%d" % last, "attached_pic"]
    args += ["-c:a", "flac" if name.endswith(".mkv") else "aac"]
    if name.endswith(".mp4") and faststart:
        args += ["-movflags", "+faststart"]
    subprocess.run(args + [path], check=True)
    return path


def mp3_input(directory, name="in.mp3", duration=4.0):
    path = os.path.join(str(directory), name)
    if not os.path.exists(path):
        subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                        "sine=frequency=440:sample_rate=44100:duration=%s" % duration,
                        "-c:a", "libmp3lame", "-b:a", "128k", "-metadata", "title=Song", path], check=True)
    return path


def streams(path):
    out = subprocess.run([FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def decoded_duration(path):
    """Seconds of audio a player gets (ffmpeg decodes, honouring the encoder delay and padding)."""
    out = subprocess.run([FFMPEG, "-v", "error", "-nostats", "-i", str(path), "-map", "0:a",
                          "-f", "null", "-", "-progress", "pipe:1"], capture_output=True, text=True,
                         check=True).stdout
    return int(re.findall(r"out_time_us=(\d+)", out)[-1]) / 1e6


def loudness(path):
    """Integrated loudness (LUFS) by ffmpeg's ebur128 filter; -70 for silence."""
    err = subprocess.run([FFMPEG, "-nostats", "-i", str(path), "-map", "0:a:0", "-af", "ebur128",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    summary = err[err.rfind("Summary:"):]
    return float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary).group(1).replace("-inf", "-70"))
