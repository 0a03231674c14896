"""Outcome emails, rendered from jinja2 templates (plain text and HTML)."""
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from services.common import constants as c

templates = Environment(
    loader=PackageLoader("services.notification", "templates"),
    autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
    trim_blocks=True, lstrip_blocks=True)


def compose(job, public_url, sender):
    """The email for a finished job: ready (with the fid and the download URL) or failed."""
    context = {"filename": job["filename"], "job_id": job["_id"], "public_url": public_url}
    if job["status"] == c.DONE:
        fid = str(job["mp3_id"])
        context.update(fid=fid, download_url="%s/download?%s" % (public_url, urlencode({"fid": fid})))
        name, subject = "ready", "Your MP3 is ready: %s" % job["filename"]
    else:
        context.update(reason=job.get("error") or "The conversion failed.")
        name, subject = "failed", "We could not convert %s" % job["filename"]
    message = EmailMessage()
    message["Subject"] = subject.replace("\r", " ").replace("\n", " ")
    message["From"] = sender
    message["To"] = job["owner"]
    message["Date"] = formatdate(localtime=False)
    # one id per job outcome, so a receiving system can spot a duplicate should one ever slip by
    message["Message-ID"] = make_msgid(idstring="%s.%s" % (job["_id"], name), domain="mp3svc")
    message["X-MP3SVC-Job"] = job["_id"]
    message.set_content(templates.get_template(name + ".txt").render(context))
    message.add_alternative(templates.get_template(name + ".html").render(context), subtype="html")
    return message
