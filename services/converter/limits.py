"""Resource limits of the converter's children (ffmpeg, ffprobe): a decoder bug or a decompression
bomb in an upload cannot take the node's memory or CPU, write past the output cap or fork. And
they die with the converter (PR_SET_PDEATHSIG): a converter killed leaves no ffmpeg behind.

    argv, preexec_fn = confined(argv, ChildLimits.from_settings(ConverterSettings.of(container)))
    subprocess.Popen(argv, ..., preexec_fn=preexec_fn)

Both are set in the child before it runs ffmpeg, so they bind ffmpeg and nothing else: by
util-linux's `setpriv --pdeathsig` and `prlimit`, each setting its part and exec'ing the next
(util-linux is essential on Debian), else by a `preexec_fn`. A preexec_fn makes subprocess fork
the whole converter and run Python in the child: Popen returned after 12 ms, and ffmpeg ran ~30 ms
later than through the two programs, whose Popen is a vfork (0.5 ms), on every child of every
conversion (docs/performance.md).

A child over RLIMIT_CPU gets SIGXCPU (then SIGKILL), over RLIMIT_FSIZE SIGXFSZ; over RLIMIT_AS
its allocations fail; at RLIMIT_NPROC it cannot start threads or processes. RLIMIT_NPROC counts
every process and thread of the user id, so it fits a dedicated user (the image's 10001); 0 leaves
a limit off (and root is exempt from RLIMIT_NPROC anyway).
"""
import errno
import os
import resource
import shutil
import signal
from dataclasses import dataclass

from services.common.utils import die_with_parent

UNLIMITED = resource.RLIM_INFINITY
SETPRIV, PRLIMIT = shutil.which("setpriv"), shutil.which("prlimit")
PRLIMIT_OPTIONS = {resource.RLIMIT_AS: "--as", resource.RLIMIT_CPU: "--cpu",
                   resource.RLIMIT_FSIZE: "--fsize", resource.RLIMIT_NPROC: "--nproc"}


@dataclass(frozen=True)
class ChildLimits:
    address_space: int  # bytes of virtual memory (RLIMIT_AS)
    cpu_seconds: int    # CPU time, all threads together (RLIMIT_CPU)
    file_size: int      # bytes of any one file the child writes (RLIMIT_FSIZE; pipes are exempt)
    processes: int      # processes and threads of the user id (RLIMIT_NPROC)

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.FFMPEG_MAX_MEMORY, settings.FFMPEG_MAX_CPU_SECONDS,
                   settings.FFMPEG_MAX_FILE_BYTES, settings.FFMPEG_MAX_PROCESSES)

    def rlimits(self):
        """(resource, value) for every limit that is on."""
        return [(which, value) for which, value in (
            (resource.RLIMIT_AS, self.address_space), (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_FSIZE, self.file_size), (resource.RLIMIT_NPROC, self.processes))
            if value]

    def clamped(self):
        """rlimits() as this process may pass them on: a limit above its own hard limit is kept at
        the hard limit (a process can only lower it)."""
        for which, value in self.rlimits():
            _, hard = resource.getrlimit(which)
            yield which, value if hard == UNLIMITED else min(value, hard)

    def apply(self):
        """Lower this process's soft and hard limits (in the child, before exec)."""
        for which, value in self.clamped():
            resource.setrlimit(which, (value, value))

    def prlimit(self):
        """The argv prefix that runs a program under the limits (soft and hard); [] for none."""
        options = ["%s=%d" % (PRLIMIT_OPTIONS[which], value) for which, value in self.clamped()]
        return [PRLIMIT] + options + ["--"] if options else []


def confined(argv, limits=None):
    """(argv, preexec_fn) for Popen: `argv` run under `limits` (ChildLimits, or None for none),
    killed when this process dies. A program that cannot be found raises FileNotFoundError, as
    Popen would without the programs in front."""
    if SETPRIV is None or PRLIMIT is None:
        return argv, _preexec(limits)
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
    return [SETPRIV, "--pdeathsig", "KILL", "--"] + (limits.prlimit() if limits else []) + argv, None


def _preexec(limits):
    die = die_with_parent(signal.SIGKILL)

    def preexec_fn():
        if limits is not None:
            limits.apply()
        die()
    return preexec_fn
