import ctypes
import datetime


def utcnow():
    """Naive UTC with millisecond precision: what BSON stores and pymongo returns."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_datetime(value):
    """A naive UTC datetime from what the server returned. nx-27017 hands back dates written by an
    update as strings ('2026-11-25 10:55:37.291000'); MongoDB returns datetimes."""
    if value is None or isinstance(value, datetime.datetime):
        return value
    text = str(value).rstrip("Z").replace("T", " ")
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


def isoformat(value):
    value = as_datetime(value)
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds") + "Z"


def as_bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def die_with_parent(sig):
    """A `preexec_fn` that has the child sent `sig` when its parent dies (PR_SET_PDEATHSIG), so
    a killed launcher or converter leaves no process behind."""
    def set_signal():
        try:
            ctypes.CDLL("libc.so.6").prctl(1, sig)
        except Exception:
            pass
    return set_signal
