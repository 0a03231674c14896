"""Account steps shared by the tests that run the services as processes with EMAIL_VERIFICATION on:
requests to the gateway, and the links mailed to the real SMTP sink (`stack.mail`)."""
import re

import requests

from tests.helpers import MailSink, wait_until

PASSWORD = "correct horse battery"
LINK_RE = re.compile(r"(https?://\S+/(verify|reset)\?token=[A-Za-z0-9_-]+)")


def post(stack, path, body=None, **kwargs):
    return requests.post(stack.base + path, json=body, timeout=30, **kwargs)


def login(stack, email, password, client=None):
    headers = {"X-Forwarded-For": client} if client else {}
    return requests.post(stack.base + "/login", auth=(email, password), headers=headers, timeout=30)


def bearer(token):
    return {"Authorization": "Bearer %s" % token}


def mails_to(sink, email):
    return [m for m in sink.messages() if m["To"] == email]


def wait_mail(sink, email, count=1, subject=None):
    def found():
        mails = [m for m in mails_to(sink, email) if subject is None or subject in m["Subject"]]
        return mails if len(mails) >= count else None
    return wait_until(found, 60, message="%d email(s) to %s" % (count, email))


def link_in(message, kind):
    """The link of a verification or reset email, checked to be in its text and HTML parts."""
    text = MailSink.text_of(message)
    html = message.get_body(preferencelist=("html",)).get_content()
    links = [found[0] for found in LINK_RE.findall(text) if found[1] == kind]
    assert links and links[0] in html.replace("&amp;", "&")
    return links[0]


def token_of(link):
    return link.rsplit("token=", 1)[1]


def new_link(sink, email, kind, known):
    """The first link of `kind` mailed to `email` that is not in `known` (mails are ordered by their
    Date header, to the second: two in one second come in any order)."""
    def found():
        links = {link_in(m, kind) for m in mails_to(sink, email)
                 if LINK_RE.search(MailSink.text_of(m))} - set(known)
        return next(iter(links), None)
    return wait_until(found, 60, message="a new %s link to %s" % (kind, email))


def links_to(sink, email, kind):
    return [link_in(m, kind) for m in mails_to(sink, email) if "/%s?" % kind in MailSink.text_of(m)]


def verified_token(stack, email, password=PASSWORD):
    known = links_to(stack.mail, email, "verify")
    assert post(stack, "/register", {"email": email, "password": password}).status_code == 202
    link = new_link(stack.mail, email, "verify", known)
    assert post(stack, "/verify", {"token": token_of(link)}).status_code == 200
    response = login(stack, email, password)
    assert response.status_code == 200, response.text
    return response.json()["token"]
