"""Account emails (auth.account_email events): a verification link, a notice to the owner of an
address someone registered again, a password-reset link. The same templates' style as the
outcome emails, plain text and HTML."""
import datetime
import logging
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urlencode

from services.common import constants as c
from services.notification.emails import EXPIRY_FORMAT, templates

log = logging.getLogger(__name__)

SUBJECTS = {
    c.MAIL_VERIFY: "Confirm your email address for mp3svc",
    c.MAIL_NOTICE: "Someone tried to register your address at mp3svc",
    c.MAIL_RESET: "Choose a new mp3svc password",
}
PAGES = {c.MAIL_VERIFY: "/verify", c.MAIL_RESET: "/reset"}
ATTEMPTS = 3


class BadEvent(ValueError):
    pass


def compose(payload, public_url, sender):
    kind, email, token = payload.get("kind"), payload.get("email"), payload.get("token")
    if kind not in SUBJECTS or not isinstance(email, str) or "@" not in email:
        raise BadEvent("not an account email: %r" % sorted(payload))
    context = {"email": email, "public_url": public_url, "expires": None, "link": None}
    if kind in PAGES:
        if not isinstance(token, str) or not token:
            raise BadEvent("a %s email without its token" % kind)
        context["link"] = "%s%s?%s" % (public_url, PAGES[kind], urlencode({"token": token}))
        context["expires"] = expiry(payload.get("expires_at"))
    message = EmailMessage()
    message["Subject"] = SUBJECTS[kind]
    message["From"] = sender
    message["To"] = email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = "<%s.%s@mp3svc>" % (uuid.uuid4().hex, kind)
    text = templates.get_template(kind + ".txt").render(context)
    message.set_content(text, cte=plain(text))
    message.add_alternative(templates.get_template(kind + ".html").render(context), subtype="html")
    return message


def plain(text):
    """7bit for plain ASCII text (the link stays whole in the raw message: `grep` finds it in a
    Maildir), else the library's choice."""
    return "7bit" if text.isascii() and all(len(line) <= 998 for line in text.splitlines()) else None


def expiry(text):
    try:
        moment = datetime.datetime.fromisoformat(str(text).rstrip("Z"))
    except ValueError:
        return "it expires"
    return moment.strftime(EXPIRY_FORMAT)


def send(mailer, payload, public_url, sender, pause):
    """Send it, retrying a few times while SMTP fails (`pause(seconds)` between tries). The
    person can ask again (resend, forgot), so after that it is logged and dropped. Never raises."""
    try:
        message = compose(payload, public_url, sender)
    except BadEvent as exc:
        log.error("account email dropped: %s", exc)
        return False
    for attempt in range(1, ATTEMPTS + 1):
        try:
            mailer.send(message)
            log.info("%s email sent", payload["kind"])
            return True
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("%s email not sent (attempt %d of %d): %s", payload["kind"], attempt,
                        ATTEMPTS, exc)
            if attempt < ATTEMPTS:
                pause(2 ** attempt)
    return False
