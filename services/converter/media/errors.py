"""What a person reads when their upload cannot be converted: sentences from ffmpeg's error output
and from our own limits. No server path reaches them (they end up in an email)."""
import re

from services.converter.exceptions import ConversionError

NOT_MEDIA = "The file is not a video or audio format we can read."
NO_AUDIO = "The video has no audio track, so there is nothing to put in an MP3."
TRUNCATED = "The file is incomplete: it ends before its media does (was the upload cut short?)."
NOTHING_DECODED = "No audio could be decoded from the upload."
STORAGE_FAILED = "Reading the upload from storage failed (%s)."


def explain(stderr):
    """A sentence for a person from ffmpeg's error output."""
    text = stderr.lower()
    if "matches no streams" in text or "does not contain any stream" in text \
            or "output file #0 does not contain" in text:
        return NO_AUDIO
    if ("invalid data found" in text or "whitelist" in text or "invalid argument" in text
            or "could not find codec parameters" in text or "moov atom not found" in text
            or "unknown format" in text):
        return NOT_MEDIA
    last = [line for line in stderr.strip().splitlines() if line.strip()][-1:]
    detail = re.sub(r"\s+", " ", last[0])[:200] if last else "unknown error"
    detail = re.sub(r"(/[^\s:/]+)+/?", "<file>", detail)  # no server paths in a user's email
    return "The media could not be converted (%s)." % detail


def check(exit):
    """Raise ConversionError unless ffmpeg's `exit` (a process.Exit) is a success."""
    if exit.returncode != 0:
        raise ConversionError(explain(exit.errors))
    if "partial file" in exit.errors:  # ffmpeg decodes what is there and exits 0
        raise ConversionError(TRUNCATED)


def too_long(limit):
    return ConversionError("The media is longer than the limit of %s." % hms(limit))


def too_slow(limit):
    return ConversionError("The conversion took longer than the limit of %s." % hms(limit))


def no_such_track(tracks, track):
    return ConversionError("The upload has %d audio track(s): there is no audio_track %d."
                           % (tracks, track))


def trim_after_end(start, duration):
    return ConversionError("The trim starts at %s s, after the end of the media (%.3f s)."
                           % (start, duration))


def hms(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return "%d h %02d min" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%d min" % (seconds // 60)
    return "%d s" % seconds
