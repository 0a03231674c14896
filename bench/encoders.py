#!/usr/bin/env python3
"""Compare ffmpeg builds and input modes for the audio-only MP4 -> MP3 conversion.

For each ffmpeg binary (Debian's /usr/bin/ffmpeg and, when given, the static build shipped in
the imageio-ffmpeg wheel) and each mode, run the conversion of one input N times under
`/usr/bin/time -v` and report wall time, CPU time (user+sys) and max RSS (median of runs).

Modes (all with `-c:a libmp3lame -q:a 2`):
  vn        ffmpeg -i in.mp4 -vn out.mp3                      (the tutorial's command)
  map       ffmpeg -i in.mp4 -map 0:a:0 out.mp3               (first audio stream only)
  pipe      cat in.mp4 | ffmpeg -i pipe:0 -map 0:a:0 out.mp3  (non-seekable input)
  pipe-wl   same as pipe, with -protocol_whitelist pipe -format_whitelist mov,mp4,...
            (the hardened command a service that feeds ffmpeg from GridFS would use)
  x2        two `map` conversions at once (a converter with CONVERTER_WORKERS=2 on 2 cores):
            wall = until both finished, CPU = both together

Usage: python bench/encoders.py [--input bench/media/clip-10m.mp4] [--runs 3]
       [--ffmpeg /usr/bin/ffmpeg --ffmpeg /path/to/other] [--md out.md]
Runs under `nice -n 19` unless --no-nice: CPU time is then the robust figure, wall time
depends on what else runs on the machine.
"""
import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WHITELIST_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,ogg,wav,mp3,aac,flac"

MODES = ("vn", "map", "pipe", "pipe-wl", "x2")


def mode_cmd(ffmpeg, mode, src, dst):
    q = shlex.quote
    base = f"{q(ffmpeg)} -hide_banner -loglevel error -nostdin -y"
    enc = f"-c:a libmp3lame -q:a 2 {q(dst)}"
    if mode == "vn":
        return f"{base} -i {q(src)} -vn {enc}"
    if mode == "map":
        return f"{base} -i {q(src)} -map 0:a:0 {enc}"
    if mode == "pipe":
        return f"cat {q(src)} | {q(ffmpeg)} -hide_banner -loglevel error -y -i pipe:0 -map 0:a:0 {enc}"
    if mode == "pipe-wl":
        return (f"cat {q(src)} | {q(ffmpeg)} -hide_banner -loglevel error -y "
                f"-protocol_whitelist pipe -format_whitelist {WHITELIST_FORMATS} "
                f"-i pipe:0 -map 0:a:0 {enc}")
    if mode == "x2":
        one = f"{base} -i {q(src)} -map 0:a:0 -c:a libmp3lame -q:a 2"
        return f"{one} {q(dst)}.1.mp3 & {one} {q(dst)}.2.mp3 & wait"
    raise ValueError(mode)


def timed(shell_cmd, nice=True):
    """Run a shell command under /usr/bin/time -v; return dict(wall, cpu, maxrss_mb, rc)."""
    argv = ["/usr/bin/time", "-v", "sh", "-c", shell_cmd]
    if nice:
        argv = ["nice", "-n", "19"] + argv
    p = subprocess.run(argv, capture_output=True, text=True)
    err = p.stderr

    def field(label):
        m = re.search(re.escape(label) + r":\s*(.+)", err)
        return m.group(1).strip() if m else None

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    secs = 0.0
    for part in (wall or "0").split(":"):
        secs = secs * 60 + float(part)
    user = float(field("User time (seconds)") or 0)
    sys_ = float(field("System time (seconds)") or 0)
    rss_kb = int(field("Maximum resident set size (kbytes)") or 0)
    status = field("Exit status")
    return {"wall": secs, "cpu": user + sys_, "maxrss_mb": rss_kb / 1024,
            "rc": int(status) if status else p.returncode,
            "stderr": err.split("\tCommand being timed")[0].strip()}


def probe(ffmpeg):
    """Version, libmp3lame present, whitelist options understood."""
    ver = subprocess.run([ffmpeg, "-hide_banner", "-version"], capture_output=True,
                         text=True).stdout.splitlines()[0]
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True,
                              text=True).stdout
    lame = bool(re.search(r"\blibmp3lame\b", encoders))
    # an option ffmpeg does not know fails with "Unrecognized option"; a known one just works
    wl = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error",
                         "-protocol_whitelist", "file", "-format_whitelist", "lavfi",
                         "-f", "lavfi", "-i", "anullsrc=d=0.1", "-f", "null", "-"],
                        capture_output=True, text=True)
    return {"version": ver, "libmp3lame": lame, "whitelist": wl.returncode == 0,
            "whitelist_err": wl.stderr.strip()[-200:]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=os.path.join(HERE, "media", "clip-10m.mp4"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ffmpeg", action="append")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--no-nice", action="store_true")
    ap.add_argument("--md", help="append the markdown table to this file")
    args = ap.parse_args(argv)
    binaries = args.ffmpeg or ["/usr/bin/ffmpeg"]
    modes = args.modes.split(",")
    lines = []
    out = lines.append
    out(f"Input: `{os.path.relpath(args.input)}` ({os.path.getsize(args.input) / 1e6:.1f} MB), "
        f"{args.runs} runs each, median shown{'' if args.no_nice else ', under nice -n 19'}.\n")
    for b in binaries:
        p = probe(b)
        whitelist = "yes" if p["whitelist"] else "NO " + p["whitelist_err"]
        out(f"- `{b}`: {p['version']}; libmp3lame: {'yes' if p['libmp3lame'] else 'NO'}; "
            f"-protocol_whitelist/-format_whitelist: {whitelist}")
    out("")
    out("| ffmpeg | mode | wall s | CPU s (user+sys) | max RSS MB | MP3 MB | runs (wall) |")
    out("|---|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="enc-") as tmp:
        dst = os.path.join(tmp, "out.mp3")
        for b in binaries:
            label = "debian" if b.startswith("/usr/bin") else os.path.basename(b)
            for mode in modes:
                runs = []
                for _ in range(args.runs):
                    r = timed(mode_cmd(b, mode, args.input, dst), nice=not args.no_nice)
                    if r["rc"] != 0:
                        out(f"| {label} | {mode} | FAILED rc={r['rc']}: {r['stderr'][-200:]} | | | | |")
                        break
                    runs.append(r)
                if not runs:
                    continue
                size = os.path.getsize(dst if os.path.exists(dst) else dst + ".1.mp3") / 1e6
                med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "maxrss_mb")}
                out(f"| {label} | {mode} | {med['wall']:.2f} | {med['cpu']:.2f} | "
                    f"{med['maxrss_mb']:.0f} | {size:.2f} | "
                    f"{', '.join('%.2f' % r['wall'] for r in runs)} |")
                print(lines[-1], flush=True)
    out("")
    out("Commands (`$F` = the binary, `$IN` = the input):")
    for mode in modes:
        out(f"- {mode}: `{mode_cmd('$F', mode, '$IN', 'out.mp3').replace(chr(39), '')}`")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        with open(args.md, "a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
