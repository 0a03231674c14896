"""Log lines that follow a job: the worker's context on every record, JSON when LOG_FORMAT=json.

config/<service>.yaml's LOGGING section (applied by `nameko run`) names two formatters, `text` and
`json`, and picks one with `formatter: ${LOG_FORMAT:text}`; its handler carries `ContextFilter`:

- `call_id` (nameko's worker_ctx.call_id, e.g. `converter.handle_video_uploaded.<uuid>`) and
  `parent_call_id` (the call that caused it, carried by nameko through events and RPC) while a worker
  runs, fed by the `LogContext` provider every service declares;
- `job_id`: given by the code (`extra={"job_id": ...}` or `bind(job_id=...)`), else from the worker's
  arguments (an event payload's `job_id`, a route's `<job_id>`), else from the message itself
  (`job <id>: ...` lines, `/jobs/<id>` in an access line);
- secrets that may reach a message (a `token=` query string in an access line, a Bearer header, a
  `password=`) are masked before any formatter sees them.
"""
import functools
import inspect
import logging
import re

from eventlet import corolocal
from nameko.extensions import DependencyProvider
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

JOB_ID_KEYS = ("job_id", "upload_id")
JOB_IN_MESSAGE = re.compile(r"\bjobs? ([0-9a-f]{32})\b|/(?:jobs|uploads)/([0-9a-f]{32})\b")
SECRETS = re.compile(r"(?i)\b((?:access_|refresh_)?token|password|secret)=([^&\s\"']+)"
                     r"|\b(Bearer|Basic) [A-Za-z0-9._~+/=-]+")
MASK = "***"
FIRST_FIELDS = ("time", "level", "service", "message", "job_id")   # for people reading the lines

_context = corolocal.local()   # one per green thread: a worker's


def current():
    """The context of the running worker (empty outside workers)."""
    values = getattr(_context, "values", None)
    if values is None:
        values = _context.values = {}
    return values


def bind(**values):
    """Adds identifiers (job_id=...) to every following line of the running worker."""
    current().update({key: value for key, value in values.items() if value is not None})


@functools.lru_cache(maxsize=None)
def parameters(function):
    try:
        return list(inspect.signature(function).parameters)[1:]   # without `self`
    except (TypeError, ValueError):
        return []


def job_id_of(method, args, kwargs):
    """The job a worker is about: a `job_id`/`upload_id` argument (a route's `<job_id>`, an RPC's
    job_id), or the `job_id` of an event payload."""
    named = dict(zip(parameters(method), args), **kwargs) if method is not None else dict(kwargs)
    for key in JOB_ID_KEYS:
        if isinstance(named.get(key), str):
            return named[key]
    for arg in args:
        if isinstance(arg, dict) and isinstance(arg.get("job_id"), str):
            return arg["job_id"]
    return None


def mask(text):
    return SECRETS.sub(lambda m: "%s=%s" % (m.group(1), MASK) if m.group(1)
                       else "%s %s" % (m.group(3), MASK), text)


class LogContext(DependencyProvider):
    """Puts the worker's call id (and its job id, when its arguments name one) on its log lines."""

    def worker_setup(self, worker_ctx):
        values = current()
        values.clear()
        values["call_id"] = worker_ctx.call_id
        parent = worker_ctx.immediate_parent_call_id
        if parent:
            values["parent_call_id"] = parent
        method = getattr(self.container.service_cls, worker_ctx.entrypoint.method_name, None)
        job_id = job_id_of(method, worker_ctx.args or (), worker_ctx.kwargs or {})
        if job_id:
            values["job_id"] = job_id

    def worker_teardown(self, worker_ctx):
        current().clear()


class ContextFilter(logging.Filter):
    """Adds the worker context to each record and masks secrets in its message; drops nothing.
    Configuring it also routes Python warnings through logging (one formatted line each)."""

    def __init__(self, name=""):
        super().__init__(name)
        logging.captureWarnings(True)

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:   # a malformed call: the handler reports it when formatting
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        for key, value in current().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        if getattr(record, "job_id", None) is None:
            found = JOB_IN_MESSAGE.search(masked)
            if found:
                record.job_id = found.group(1) or found.group(2)
        return True


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, service, logger, message, and the
    context's job_id / call_id / parent_call_id when there are some; exceptions as `exc_info`."""

    def __init__(self, service, **kwargs):
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("static_fields", {"service": service})
        super().__init__(**kwargs)

    def add_fields(self, log_record, record, message_dict):
        super().add_fields(log_record, record, message_dict)
        rest = dict(log_record)
        log_record.clear()
        for key in FIRST_FIELDS:
            if key in rest:
                log_record[key] = rest.pop(key)
        log_record.update(rest)
