"""One conversion: the steps over the upload, each an argv from args.py run by the supervisor."""
import dataclasses
import math
import shutil

from services.common.options import ConversionOptions
from services.converter import tags as id3
from services.converter.exceptions import ConversionError
from services.converter.media import args, boxes, cover, errors, loudness, probe
from services.converter.media.process import Overruled, Supervisor
from services.converter.media.progress import Progress
from services.converter.media.tempfiles import spooled, temp_path
from services.converter.media.warm import Warm
from services.converter.output import LocalMp3


MEASURING = 0.5  # of a normalised conversion's progress, the share of its measuring pass


@dataclasses.dataclass
class Result:
    duration: float       # seconds of the MP3
    size: int             # bytes of the MP3, tags included
    passthrough: bool = False   # the upload's MP3 audio was copied, not re-encoded
    normalized: str = ""  # loudnorm's mode ("linear" or "dynamic") when normalised


class Encoder:
    def __init__(self, ffmpeg_bin="ffmpeg", ffprobe_bin="ffprobe", quality=2, timeout=1500,
                 max_duration=4 * 3600, tmp_dir=None, progress_period=1.0, limits=None,
                 warm=False):
        self.tools = args.Tools(ffmpeg=ffmpeg_bin, ffprobe=ffprobe_bin, quality=quality,
                                max_duration=max_duration, progress_period=progress_period)
        self.timeout = timeout  # seconds for the whole conversion, every pass included
        self.tmp_dir = tmp_dir
        self.limits = limits  # ChildLimits of every ffmpeg/ffprobe child (services/converter/limits.py)
        # `warm`: the default conversion's processes started ahead (media/warm.py), once prepare()
        self.warm = Warm(self.tools, limits, tmp_dir) if warm else None

    def target(self):
        """Context manager: a local path for one conversion's MP3 (the `target` of convert), removed
        on exit."""
        if self.warm is None:
            return temp_path(self.tmp_dir, suffix=".mp3")
        return self.warm.target()

    def prepare(self):
        """Start ahead what the next conversion will most likely run: once a conversion settled."""
        if self.warm is not None:
            self.warm.refill()

    def close(self):
        """No process left waiting (the container stops)."""
        if self.warm is not None:
            self.warm.close()

    def convert_stream(self, growing, target, options=None, should_stop=lambda: False,
                       on_progress=None, output=None):
        """Convert an upload while it arrives (a storage GridFS GrowingFile, in a container that
        decodes from a stream) into the MP3 at `target`: every step reads the pipe, waiting for the
        bytes not there yet (time not counted in the timeout). The Result, or None when the pipe
        yielded no audio; raises as `convert` does (the caller may convert again after the last
        byte)."""
        options = ConversionOptions.model_validate(options or {})
        supervisor = Supervisor(self.timeout, should_stop, self.limits, idle=lambda: growing.waited,
                                warm=self.warm)
        return _Attempt(self.tools, supervisor, growing, Progress(on_progress), output).convert(
            args.PIPE, target, options)

    def convert(self, stored, target, options=None, should_stop=lambda: False, on_progress=None,
                output=None):
        """Convert the seekable `stored` file into the MP3 at `target` as `options` (the job's
        normalised options dict) ask; returns a Result. `output` (services/converter/output.py)
        takes the MP3 as ffmpeg writes its audio to `target`: by default the tag is put in front
        of it there when ffmpeg is done.

        The upload is piped into ffmpeg. An MP4/MOV whose index (moov) follows the media data cannot
        be decoded from a pipe (ffmpeg then writes an empty MP3 and exits 0), so such files, and any
        pipe attempt that yields no audio, are spooled to a temporary file first.
        Raises ConversionError (the upload's fault, a sentence), TransientError (storage failed
        while reading the upload: retry) or ConversionAborted (should_stop() turned true).
        """
        options = ConversionOptions.model_validate(options or {})
        supervisor = Supervisor(self.timeout, should_stop, self.limits, warm=self.warm)

        def attempt(source):
            feed = boxes.Piped(stored) if source == args.PIPE else None
            return _Attempt(self.tools, supervisor, feed, Progress(on_progress), output).convert(
                source, target, options)
        try:
            result = attempt(args.PIPE)
        except boxes.NotPipeable:
            result = None
        if result is not None:
            return result
        with spooled(stored, self.tmp_dir) as path:
            result = attempt(path)
        if result is None:
            raise ConversionError(errors.NOTHING_DECODED)
        return result


class _Attempt:
    """The steps of one conversion over one input: the pipe (fed from storage) or the spooled
    file."""

    def __init__(self, tools, supervisor, feed, progress, output=None):
        self.tools = tools
        self.supervisor = supervisor
        self.feed = feed
        self.progress = progress
        self.output = output  # None: a LocalMp3 at the target

    def run(self, argv, on_line=None, beside=None, on_beside=None):
        """argv over the input (fed on stdin when it is the pipe): a process.Exit. A pass over an
        upload still arriving also tells its progress by the bytes it was fed. `beside`: the argv
        of a process run at the same time over the same input (the cover frame's: it reads up to
        its frame only, where a second output of the encoding run would make ffmpeg decode every
        key frame to the end)."""
        expected = getattr(self.feed, "expected", None)
        on_fed = None
        if on_line is not None and expected:
            on_fed = lambda fed: self.progress.fed(fed / expected)  # noqa: E731
        return self.supervisor.run(argv, self.feed, on_line, on_fed, beside=beside,
                                   on_beside=on_beside)

    def convert(self, source, target, options):
        """The Result, or None when a pipe yielded no audio (the caller retries from a file).
        ffprobe runs beside an encoding on the arguments it most likely confirms (so its time is
        not added to the conversion's); when it asks for others, the encoding starts again with
        them. Normalising measures first, and its passes need the probe's facts before."""
        output = self.output or LocalMp3(target)
        info = None
        if not options.normalize:
            try:
                return _Encoding(self, source, target, options, output).run(None)
            except Overruled as overruled:
                info = overruled.args[0]  # None: the probe beside could not tell
        if info is None:
            info = probe.media_info(self.run(args.probe(self.tools, source, args.FORMAT_WHITELIST)))
        return _Encoding(self, source, target, options, output).run(info)

    def duration(self, target, span):
        """Seconds of the MP3 just encoded, None when it holds no audio. ffmpeg's last out_time is
        within one frame of what a player shows (the MP3's frames hold the encoder's delay and
        padding on top), and a trim is sample-accurate, so the expected span is exact when the
        audio lasts that long. Only when ffmpeg reported no time is the MP3 probed."""
        out_time = self.progress.out_time
        if out_time <= 0:
            out_time = probe.duration(self.supervisor.run(args.probe(self.tools, target)))
            if out_time <= 0:
                return None
        self.check_duration(out_time)
        return round(min(out_time, span) if span else out_time, 3)

    def check_duration(self, duration):
        if duration > self.tools.max_duration:
            raise errors.too_long(self.tools.max_duration)


def expected_span(duration, options):
    """Seconds of audio the MP3 will hold (0 when unknown), for progress fractions."""
    end = options.end if options.end is not None else duration
    if duration:
        end = min(end, duration)
    return max(0.0, (end or 0.0) - (options.start or 0.0))


def which(binary):
    return shutil.which(binary) or binary


class _Encoding:
    """One encoding pass of an _Attempt (the measuring passes first when normalising) and the tag:
    `run(info)` with the facts of a probe run before it, or `run(None)` with the probe beside it
    on the argv most likely, raising Overruled(info) when the probe asks for another."""

    def __init__(self, attempt, source, target, options, output):
        self.attempt, self.tools = attempt, attempt.tools
        self.source, self.target, self.options, self.output = source, target, options, output
        self.info, self.span, self.covers = None, 0.0, []  # the probe's facts, once learnt
        self.cover_exit = None  # the cover process's Exit, when it ran beside the encoding

    def run(self, info):
        attempt, options = self.attempt, self.options
        measured, offset = None, 0.0
        if info is not None:
            self.learn(info)
            if options.normalize:
                offset = MEASURING
                measured = self.measure()
        argv = args.encode(self.tools, self.source, self.target, options, info, measured)
        reader = attempt.progress.reader(self.span, offset, 1.0 - offset)
        attempt.progress.out_time = 0.0  # nothing of an overruled pass
        self.output.reset()
        if info is None:
            reader.held = True  # no progress told before the probe confirmed the pass

            def probed(exit):
                """The probe beside: a refusal ends the pass, an argv unlike the one running
                overrules it, and so does a probe that may not have read what it needed."""
                if exit.cut:
                    raise Overruled(None)
                found = probe.media_info(exit)
                self.learn(found)
                if args.encode(self.tools, self.source, self.target, options, found) != argv:
                    raise Overruled(found)
                reader.span, reader.held = self.span, False
                self.plan()
                return (self.covers[0], self.pictured) if self.covers else None
            encoded = attempt.run(argv, reader, beside=args.probe(self.tools, self.source,
                                                                  args.FORMAT_WHITELIST),
                                  on_beside=probed)
            if self.info is None:  # the encoding ended before the probe's answer was taken
                probed(encoded.beside)
        else:
            self.plan()
            encoded = attempt.run(argv, reader, beside=self.covers[0] if self.covers else None,
                                  on_beside=self.pictured)
            self.cover_exit = self.cover_exit or encoded.beside
        errors.check(encoded)
        duration = attempt.duration(self.target, self.span)
        if duration is None:
            return None
        picture = cover.picture(self.cover_exit)
        # none: no key frame after that time, or the process beside was cut short; a pass of its
        # own, over any frame when there were two argvs
        if picture is None:
            picture = cover.grab(attempt.run, self.covers[-1:])
        size = self.output.finish(id3.render(self.tag(picture, duration), self.output.head))
        attempt.progress.report(1.0)
        return Result(duration=duration, size=size, passthrough=args.copies(options, self.info),
                      normalized=args.loudnorm_mode(measured) if measured else "")

    def learn(self, info):
        """The probe's facts: checked against the limits and options, the span to encode."""
        options = self.options
        if info.duration:
            self.attempt.check_duration(info.duration)
        if info.audio and options.track >= len(info.audio):
            raise errors.no_such_track(len(info.audio), options.track)
        if info.duration and (options.start or 0) >= info.duration:
            raise errors.trim_after_end(options.start, info.duration)
        self.info, self.span = info, expected_span(info.duration, options)
        self.covers = args.cover(self.tools, self.source, options, info)

    def measure(self):
        """loudness.measured of the normalising passes (ebur128's, and loudnorm's own when its
        dynamic mode is called for)."""
        attempt, tools, source, options = self.attempt, self.tools, self.source, self.options
        measured = loudness.measured(attempt.run(args.measure(tools, source, options),
                                                 attempt.progress.reader(self.span, 0.0, MEASURING)))
        if measured and args.loudnorm_mode(measured) == "dynamic":
            measured = loudness.measured(
                attempt.run(args.measure_dynamic(tools, source, options),
                            attempt.progress.reader(self.span, 0.0, MEASURING)),
                loudness.parse_loudnorm)
        return measured

    def plan(self):
        """Without a cover to wait for, the tag is known: the output may store the audio."""
        if not self.covers:
            self.begin(None)

    def pictured(self, exit):
        """The cover process beside the encoder ended: with its picture, the tag is known."""
        self.cover_exit = exit
        picture = cover.picture(exit)
        if picture is not None:
            self.begin(picture)

    def begin(self, picture):
        """The tag's size is known (the chapters cut at the span expected): the output may store
        the audio as ffmpeg writes it."""
        self.output.begin(len(id3.render(self.tag(picture, self.span or math.inf))))

    def tag(self, picture, duration):
        options, info = self.options, self.info
        return id3.frames_for(info.tags if options.with_tags else {},
                              info.chapters if options.with_tags else [], options, picture,
                              duration)
