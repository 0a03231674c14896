"""Outcome emails, rendered from jinja2 templates (plain text and HTML)."""
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from services.common import constants as c

EXPIRY_FORMAT = "%Y-%m-%d %H:%M UTC"

templates = Environment(
    loader=PackageLoader("services.notification", "templates"),
    autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
    trim_blocks=True, lstrip_blocks=True)


def compose(job, public_url, sender, retention_hours=None):
    """The email for a finished job: ready (with the fid, the download URL and, given
    RETENTION_HOURS, when the MP3 is deleted) or failed."""
    context = {"filename": job.filename, "job_id": job.id, "public_url": public_url}
    if job.status == c.DONE:
        fid = str(job.mp3_id)
        expires = job.expires_at(retention_hours) if retention_hours is not None else None
        context.update(fid=fid, download_url="%s/download?%s" % (public_url, urlencode({"fid": fid})),
                       expires=expires.strftime(EXPIRY_FORMAT) if expires else None)
        name, subject = "ready", "Your MP3 is ready: %s" % job.filename
    else:
        context.update(reason=job.error or "The conversion failed.")
        name, subject = "failed", "We could not convert %s" % job.filename
    message = EmailMessage()
    message["Subject"] = subject.replace("\r", " ").replace("\n", " ")
    message["From"] = sender
    message["To"] = job.owner
    message["Date"] = formatdate(localtime=False)
    # one id per job outcome, so a receiving system can spot a duplicate should one ever slip by
    message["Message-ID"] = message_id(job, name)
    message["X-MP3SVC-Job"] = job.id
    message.set_content(templates.get_template(name + ".txt").render(context))
    message.add_alternative(templates.get_template(name + ".html").render(context), subtype="html")
    return message


def message_id(job, outcome):
    """The same for every send of one outcome of one job (a resend after a crash), different for
    the outcome of a requeued job, so receivers can drop true duplicates only."""
    finished = job.finished_at or job.updated_at
    stamp = int(finished.timestamp() * 1000) if finished else 0
    return "<%s.%s.%d@mp3svc>" % (job.id, outcome, stamp)
