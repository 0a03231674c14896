"""The first pass of the EBU R128 normalisation: what ebur128 measured, read from ffmpeg's stderr."""
import json
import math
import re

from services.converter.media import errors

SILENCE_LUFS = -70.0
MEASURED = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
# ebur128's summary: the integrated loudness and its gate, the loudness range, the true peak
_SUMMARY = re.compile(
    r"Integrated loudness:\s*I:\s*(?P<input_i>\S+) LUFS\s*Threshold:\s*(?P<input_thresh>\S+) LUFS"
    r"\s*Loudness range:\s*LRA:\s*(?P<input_lra>\S+) LU\b.*?"
    r"True peak:\s*Peak:\s*(?P<input_tp>\S+) dBFS", re.S)


def measured(exit, parse=None):
    """The measurements of the pass whose Exit this is (ebur128's, or loudnorm's with `parse`
    parse_loudnorm), for args.encode; None for silence (or nothing measured): no gain to apply.
    Raises ConversionError when ffmpeg failed."""
    errors.check(exit)
    values = (parse or parse_ebur128)(exit.errors)
    if values is None or values["input_i"] < SILENCE_LUFS:
        return None
    return values


def parse_ebur128(stderr):
    """The measurements in ebur128's last summary on ffmpeg's stderr, as floats (loudnorm's names;
    target_offset 0: no first loudnorm pass to correct), None when absent or not finite."""
    found = list(_SUMMARY.finditer(stderr))
    if not found:
        return None
    try:
        values = {key: float(value) for key, value in found[-1].groupdict().items()}
    except ValueError:
        return None
    values["target_offset"] = 0.0
    if not all(math.isfinite(value) for value in values.values()):
        return None
    return values


def parse_loudnorm(stderr):
    """loudnorm's print_format=json block from the end of ffmpeg's stderr, numbers as floats."""
    start, end = stderr.rfind("{"), stderr.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(stderr[start:end + 1])
        values = {key: float(data[key]) for key in MEASURED}
    except (ValueError, KeyError, TypeError):
        return None
    if not all(math.isfinite(value) for value in values.values()):
        return None
    return values
