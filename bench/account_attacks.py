"""The attacks of issue 16, run against the services of a source tree as real processes (auth,
gateway, notification, converter; nx-27017, a mail sink, a vhost of the local RabbitMQ), one line
of evidence each. Run it on an older checkout for "before":

    .venv/bin/python -m bench.account_attacks                    # this tree
    git archive c4bf61f | tar -x -C /tmp/before
    .venv/bin/python -m bench.account_attacks --tree /tmp/before  # the tree before issue 16
"""
import argparse
import email
import email.policy
import mailbox
import os
import re
import secrets
import statistics
import tempfile
import time

import requests

import devtools.stack as stack_module
from devtools.stack import LOCAL, NX_27017, ROOT, NotReady, Stack, clean_env, free_port, wait_until

PASSWORD = "correct horse battery"
MANAGEMENT = "http://%s:15672/api" % LOCAL
LINK_RE = re.compile(r"https?://\S+/verify\?token=([A-Za-z0-9_-]+)")


class Site:
    def __init__(self, base, maildir, amqp_uri):
        self.base = base
        self.maildir = maildir
        self.amqp_uri = amqp_uri

    def post(self, path, body=None, **kwargs):
        return requests.post(self.base + path, json=body, timeout=30, **kwargs)

    def login(self, address, password=PASSWORD, client=None):
        headers = {"X-Forwarded-For": client} if client else {}
        return requests.post(self.base + "/login", auth=(address, password), headers=headers,
                             timeout=30)

    def jobs(self, token=None, cookie=None):
        return requests.get(self.base + "/jobs", timeout=30, cookies=cookie,
                            headers={"Authorization": "Bearer " + token} if token else {})

    def mails(self, to):
        if not os.path.isdir(os.path.join(self.maildir, "new")):
            return []
        box = mailbox.Maildir(self.maildir, create=False)
        found = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                 for key in box.keys()]
        return [m for m in found if m["To"] == to]

    def account(self, address, client=None):
        """A token of a usable account, confirming the address from the mail when the tree asks."""
        seen = {m["Message-ID"] for m in self.mails(address)}
        self.post("/register", {"email": address, "password": PASSWORD})
        response = self.login(address, client=client)
        if response.status_code == 403:
            def link():
                for mail in self.mails(address):
                    found = LINK_RE.search(mail.get_body(preferencelist=("plain",)).get_content())
                    if mail["Message-ID"] not in seen and found:
                        return found.group(1)
            token = wait_until(link, 60, message="a verification mail")
            self.post("/verify", {"token": token})
            response = self.login(address, client=client)
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def rpc(self, service, method, *args):
        from nameko.standalone.rpc import ClusterRpcProxy
        with ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, timeout=60) as cluster:
            return getattr(getattr(cluster, service), method)(*args)


def mail_cannon(site):
    victim = "victim@example.org"
    registered = site.post("/register", {"email": victim, "password": "attacker's password"})
    login = site.login(victim, "attacker's password")
    sent = "no upload possible"
    if login.status_code == 200:
        token = login.json()["token"]
        upload = requests.post(site.base + "/upload", timeout=30,
                               headers={"Authorization": "Bearer " + token},
                               files={"file": ("Urgent: reset at https://evil.example.mp4", b"x")})
        try:
            wait_until(lambda: [m for m in site.mails(victim) if "Urgent" in m["Subject"]], 90,
                       message="the failure mail")
        except NotReady:
            pass
        sent = "upload -> %d" % upload.status_code
    subjects = sorted({m["Subject"] for m in site.mails(victim)})
    return ("register the victim's address -> %d; log in as it -> %d; %s; mail to the victim: %s"
            % (registered.status_code, login.status_code, sent, subjects))


def enumeration(site):
    taken = ["taken%d@example.com" % i for i in range(10)]
    for address in taken:
        site.account(address)
    times, answers = {"new": [], "taken": []}, {"new": set(), "taken": set()}
    for i in range(10):
        for kind, address in (("new", "fresh%d@example.com" % i), ("taken", taken[i])):
            began = time.perf_counter()
            response = site.post("/register", {"email": address, "password": PASSWORD})
            times[kind].append(time.perf_counter() - began)
            answers[kind].add("%d %s" % (response.status_code,
                                         response.text.replace(address, "E")[:60]))
    new, old = statistics.mean(times["new"]), statistics.mean(times["taken"])
    return ("POST /register new: %s in %.4f s mean; taken: %s in %.4f s mean (ratio %.2f)"
            % (sorted(answers["new"]), new, sorted(answers["taken"]), old, new / old))


def logout(site):
    token = site.account("leaver@example.com")
    out = site.post("/logout", headers={"Authorization": "Bearer " + token})
    bearer = site.jobs(token).status_code
    browser = requests.Session()
    browser.post(site.base + "/session", json={"email": "leaver@example.com", "password": PASSWORD},
                 timeout=30)
    cookie = browser.cookies.get("mp3svc_token")
    browser.delete(site.base + "/session", headers={"Origin": site.base}, timeout=30)
    after = site.jobs(cookie={"mp3svc_token": cookie}).status_code
    return ("POST /logout -> %d, then the token -> %d; DELETE /session, then a copy of the cookie "
            "-> %d" % (out.status_code, bearer, after))


def outliving(site):
    address = "comeback@example.com"
    token = site.account(address)
    site.rpc("auth", "disable_user", address)
    site.rpc("auth", "enable_user", address)
    reenabled = site.jobs(token).status_code
    token = site.account(address)
    site.rpc("gateway", "delete_user", address)
    site.account(address)
    again = site.jobs(token).status_code
    return ("token after disable+enable -> %d; token after delete + register again -> %d"
            % (reenabled, again))


def lockout(site):
    owner = "owner@example.com"
    site.account(owner, client="192.0.2.1")
    codes = [site.login(owner, "guess %d" % i, client="198.51.100.%d" % (i % 3)).status_code
             for i in range(18)]
    mine = site.login(owner, client="192.0.2.1")
    return ("18 wrong guesses from 3 other addresses -> %s; then the owner from their own address "
            "-> %d" % (codes, mine.status_code))


def cross_site(site):
    body = '{"email": "csrf@example.com", "password": "%s"}' % PASSWORD
    codes = [requests.post(site.base + "/register", data=body, timeout=30,
                           headers={"Content-Type": kind}).status_code
             for kind in ("text/plain", "application/x-www-form-urlencoded")]
    token = site.account("headers@example.com")
    response = site.jobs(token)
    return ("POST /register as text/plain, form -> %s; GET /jobs Cache-Control: %s, "
            "X-Content-Type-Options: %s" % (codes, response.headers.get("Cache-Control"),
                                            response.headers.get("X-Content-Type-Options")))


ATTACKS = (mail_cannon, enumeration, logout, outliving, lockout, cross_site)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=ROOT, help="the source tree whose services run")
    args = parser.parse_args()
    tree = os.path.abspath(args.tree)
    stack_module.ROOT = tree  # the processes run that tree's code and config/*.yaml
    workdir = tempfile.mkdtemp(prefix="account-attacks-")
    vhost = "attacks-" + secrets.token_hex(4)
    guest = ("guest", "guest")
    requests.put("%s/vhosts/%s" % (MANAGEMENT, vhost), auth=guest, timeout=30).raise_for_status()
    requests.put("%s/permissions/%s/guest" % (MANAGEMENT, vhost), auth=guest, timeout=30,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    port = free_port()
    base = "http://%s:%d" % (LOCAL, port)
    amqp_uri = "pyamqp://guest:guest@%s:5672/%s" % (LOCAL, vhost)
    stack = Stack(workdir, clean_env(
        PYTHONPATH=tree, AMQP_URI=amqp_uri, GATEWAY_ADDRESS="%s:%d" % (LOCAL, port), PUBLIC_URL=base,
        AUTH_DB_URI="sqlite:///%s/auth.db" % workdir, HEARTBEAT_DIR=workdir, MONGO_DB="attacks",
        JWT_SECRET=secrets.token_urlsafe(48), REGISTER_RATE="1000/minute", LOGIN_RATE="1000/minute",
        TRUSTED_PROXIES=LOCAL, PYTHONWARNINGS="ignore"))
    maildir = os.path.join(workdir, "mail")
    try:
        stack.start_mongo(os.path.join(workdir, "mongo"), binary=NX_27017)
        stack.start_mail_sink(maildir)
        for service in ("auth", "gateway", "notification", "converter"):
            stack.start_service(service)
        stack.wait_healthy(base, 120)
        site = Site(base, maildir, amqp_uri)
        print("tree: %s" % tree)
        for attack in ATTACKS:
            print("%-12s %s" % (attack.__name__ + ":", attack(site)), flush=True)
    finally:
        stack.stop_all()
        requests.delete("%s/vhosts/%s" % (MANAGEMENT, vhost), auth=guest, timeout=30)


if __name__ == "__main__":
    main()
