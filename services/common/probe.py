"""Liveness/readiness probe for services without HTTP: `python -m services.common.probe <service>`.

Each service touches its heartbeat file every 10 s from a green thread of its own; the probe
passes while the file is fresh.
"""
import os
import sys
import time

MAX_AGE = 60


def heartbeat_path(service, directory=None):
    directory = directory or os.environ.get("HEARTBEAT_DIR") or "/tmp"
    return os.path.join(directory, "mp3svc-%s.alive" % service)


def touch(service, directory=None):
    path = heartbeat_path(service, directory)
    with open(path, "a"):
        os.utime(path, None)


def main(argv):
    if len(argv) != 2:
        print("usage: python -m services.common.probe <service>", file=sys.stderr)
        return 2
    path = heartbeat_path(argv[1])
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        print("%s: no heartbeat at %s" % (argv[1], path))
        return 1
    if age > MAX_AGE:
        print("%s: heartbeat %.0f s old" % (argv[1], age))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
