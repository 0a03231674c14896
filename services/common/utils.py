import ctypes
import datetime
import os
import signal


def utcnow():
    """Naive UTC with millisecond precision: what BSON stores and pymongo returns."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def isoformat(value):
    """A naive UTC datetime as ISO 8601 with a Z, or None."""
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


def kill_group(proc):
    """SIGKILL a child started in its own session (`start_new_session=True`) with everything it
    started, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()
