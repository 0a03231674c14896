"""Development mail sink: an SMTP server that stores every message in a Maildir and logs one line.

    python -m devtools.mailsink --maildir var/mail --host 127.0.0.1 --port 1025
"""
import argparse
import email
import email.policy
import logging
import mailbox
import os
import signal
import threading

from aiosmtpd.controller import Controller

log = logging.getLogger("mailsink")


class MaildirHandler:
    def __init__(self, path):
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        self.path = path
        self.maildir = mailbox.Maildir(path, create=False)

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        key = self.maildir.add(mailbox.MaildirMessage(raw))
        log.info("mail to %s: %s (%s/new/%s)", ", ".join(envelope.rcpt_tos),
                 message.get("Subject", ""), self.path, key)
        return "250 Message accepted for delivery"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maildir", default="var/mail")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    log.info("listening on %s:%d, storing mail in %s", args.host, args.port, args.maildir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
