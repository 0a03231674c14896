"""ffmpeg's -progress reports of a conversion's passes, as one rising fraction."""
import logging

log = logging.getLogger(__name__)


class Progress:
    """ffmpeg's -progress reports of one conversion as a rising fraction for `on_progress`."""

    def __init__(self, on_progress=None):
        self.on_progress = on_progress or (lambda fraction: None)
        self.reported = 0.0
        self.current = (0.0, 1.0)  # (offset, share) of the pass whose reader was made last
        self.out_time = 0.0  # seconds encoded, from ffmpeg's last report

    def report(self, fraction):
        fraction = min(1.0, max(0.0, fraction))
        if fraction > self.reported:
            self.reported = fraction
            try:
                self.on_progress(fraction)
            except Exception:  # a failed progress write must not stop us reading ffmpeg's stdout
                log.warning("progress callback failed", exc_info=True)

    def reader(self, span, offset, share):
        """An `on_line` for a pass over `span` seconds that covers [offset, offset + share];
        its `span` may be set later (0: unknown, only the pass's end is told)."""
        self.current = (offset, share)
        return _Reader(self, span, offset, share)

    def fed(self, fraction):
        """The share of an upload still arriving that the current pass was fed: ffmpeg (5.1)
        reports nothing while it waits for input, so its progress is also told this way (capped
        short of the pass's end, which only ffmpeg's report reaches)."""
        offset, share = self.current
        self.report(offset + share * min(fraction, 0.99))


class _Reader:
    """Progress.reader's `on_line`: ffmpeg's -progress lines of one pass."""

    def __init__(self, progress, span, offset, share):
        self.progress, self.span, self.offset, self.share = progress, span, offset, share
        self.held = False  # True: nothing is reported (the pass may yet be overruled)

    def __call__(self, line):
        key, _, value = line.partition(b"=")
        if key == b"out_time_us":
            try:
                seconds = int(value) / 1e6
            except ValueError:
                return
            self.progress.out_time = seconds
            if self.held:
                return
            if self.span:
                self.progress.report(self.offset + self.share * min(1.0, seconds / self.span))
        elif key == b"progress" and value.strip() == b"end" and not self.held:
            self.progress.report(self.offset + self.share)
