"""The first pass of EBU R128 loudnorm: what it measured, read from ffmpeg's stderr."""
import json
import math

from services.converter.media import errors

SILENCE_LUFS = -70.0
MEASURED = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")


def measured(exit):
    """The measurements of the pass whose Exit this is, for args.loudnorm_filter; None for
    silence (or nothing measured): no gain to apply. Raises ConversionError when ffmpeg failed."""
    errors.check(exit)
    values = parse_loudnorm(exit.errors)
    if values is None or values["input_i"] < SILENCE_LUFS:
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
