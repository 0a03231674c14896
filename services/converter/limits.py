"""Resource limits of the converter's children (ffmpeg, ffprobe): a decoder bug or a decompression
bomb in an upload cannot take the node's memory or CPU, write past the output cap or fork.

    limits = ChildLimits.from_settings(ConverterSettings.of(container))
    subprocess.Popen(argv, ..., preexec_fn=limits.preexec(die_with_parent(signal.SIGKILL)))

`preexec` runs in the child between fork and exec, so the limits bind ffmpeg and nothing else.
A child over RLIMIT_CPU gets SIGXCPU (then SIGKILL), over RLIMIT_FSIZE SIGXFSZ; over RLIMIT_AS
its allocations fail; at RLIMIT_NPROC it cannot start threads or processes. RLIMIT_NPROC counts
every process and thread of the user id, so it fits a dedicated user (the image's 10001); 0 leaves
a limit off (and root is exempt from RLIMIT_NPROC anyway).
"""
import resource
from dataclasses import dataclass

UNLIMITED = resource.RLIM_INFINITY


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

    def apply(self):
        """Lower this process's soft and hard limits (in the child, before exec). A limit above
        the current hard limit is kept at the hard limit: a process can only lower it."""
        for which, value in self.rlimits():
            _, hard = resource.getrlimit(which)
            if hard != UNLIMITED:
                value = min(value, hard)
            resource.setrlimit(which, (value, value))

    def preexec(self, *then):
        """A `preexec_fn`: apply the limits, then call each of `then` (die_with_parent, ...)."""
        def preexec_fn():
            self.apply()
            for step in then:
                step()
        return preexec_fn
