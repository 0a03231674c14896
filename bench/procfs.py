"""CPU time and memory of processes, read from /proc (Linux), and commands timed by /usr/bin/time."""
import os
import subprocess
import tempfile
import threading
import time


def proc_status(pid, key):
    """A kB field of /proc/<pid>/status in MB, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                out += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid, part="all"):
    """utime+stime of a process ("self"), of the children it has waited for, e.g. ffmpeg
    ("children"), or both ("all")."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    first, last = {"self": (11, 13), "children": (13, 15), "all": (11, 15)}[part]
    return sum(int(ticks) for ticks in fields[first:last]) / tick


def reset_hwm(pid):
    """Reset VmHWM (peak RSS) of a process: `echo 5 > /proc/<pid>/clear_refs` (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
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
                    for child in descendants(pid):
                        child_rss = proc_status(child, "VmRSS") or 0
                        tree += child_rss
                        self.peak_children[name] = max(self.peak_children.get(name, 0), child_rss)
                    self.peak_tree[name] = max(self.peak_tree.get(name, 0), tree)
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)


def timed_cmd(argv, nice=True, sample=True, **popen_args):
    """Run a command under /usr/bin/time; return wall, CPU (user+sys of the command and the
    children it waited for), max RSS of its largest process and, when sampled (20 Hz), the peak
    summed RSS of the whole process tree.

    /usr/bin/time (not os.wait4 from here) because Linux carries the RSS high-water mark of the
    forking process over exec: a child forked from this (large) Python process would report
    this process's peak as its own."""
    fd, time_file = tempfile.mkstemp(prefix="time-")
    os.close(fd)
    full = ["/usr/bin/time", "-o", time_file, "-f", "%e %U %S %M %x"] + list(argv)
    if nice:
        full = ["nice", "-n", "19"] + full
    started = time.monotonic()
    proc = subprocess.Popen(full, **popen_args)
    sampler = None
    if sample:
        sampler = RssSampler({"tree": [proc.pid]}, 0.05)
        sampler.start()
    proc.wait()
    wall = time.monotonic() - started
    if sampler:
        sampler.stop()
    try:
        with open(time_file) as handle:
            fields = handle.read().strip().splitlines()[-1].split()
    finally:
        os.remove(time_file)
    time_wall, user, system, max_kb, status = (float(fields[0]), float(fields[1]), float(fields[2]),
                                               int(fields[3]), int(fields[4]))
    return {"rc": status if proc.returncode == 0 else proc.returncode, "wall": wall,
            "time_wall": time_wall, "cpu": user + system, "maxrss_mb": max_kb / 1024,
            "tree_mb": (sampler.peak_tree.get("tree") if sampler else None)}
