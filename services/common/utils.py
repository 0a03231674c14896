import datetime


def utcnow():
    """Naive UTC with millisecond precision: what BSON stores and pymongo returns."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def isoformat(value):
    if value is None:
        return None
    if isinstance(value, str):  # some wire servers hand dates back as strings
        return value if value.endswith("Z") else value + "Z"
    return value.isoformat(timespec="milliseconds") + "Z"


def as_bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
