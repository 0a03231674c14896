"""What an operator sees: each service's /metrics after one conversion, a real Prometheus scraping
them (with kubernetes/'s alert rules loaded), and LOG_FORMAT=json lines that follow one job.

The four services run as real processes (`nameko run`), metrics on free ports, LOG_FORMAT=json.
"""
import json
import os
import re
import shutil

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devtools.stack import SERVICES, free_port, wait_for_port
from services.common import constants as c
from tests.conftest import JWT_SECRET
from tests.helpers import wait_until
from tests.integration.conftest import Api
from tests.integration.processes import ProcessStack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RULES = os.path.join(ROOT, "kubernetes", "components", "monitoring", "prometheusrule.yaml")
PASSWORD = "observe-Pa55word-not-in-logs"
JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")


def scrape(url):
    """{(name, ((label, value), ...)): value} of every sample at `url`."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code)
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


class Flow:
    """One user converting one video through the whole system."""

    def __init__(self, procs, mail, video):
        self.procs = procs
        self.api = Api(procs.base)
        self.email = "observer@example.com"
        self.token = self.api.token_for(self.email, PASSWORD)
        assert self.api.login(self.email, "wrong-password-1").status_code == 401
        self.video_size = os.path.getsize(video)
        response = self.api.upload(self.token, video)
        assert response.status_code == 202, response.text
        self.job_id = response.json()["job_id"]
        self.job = self.api.wait_job(self.token, self.job_id, timeout=120)
        assert self.job["status"] == c.DONE, self.job
        assert self.api.download(self.token, self.job["mp3_id"]).status_code == 200
        self.mail = mail.wait_for(1, timeout=60)[-1]
        self.body = mail.text_of(self.mail)

    def metrics(self, service):
        return scrape(self.procs.metrics_url(service))


@pytest.fixture
def flow(tmp_path, rabbit_config, mongo_uri, mongo_db, mail_sink, media):
    procs = ProcessStack(tmp_path, {
        "AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri, "MONGO_DB": mongo_db,
        "JWT_SECRET": JWT_SECRET, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": mail_sink.port,
        "LOG_FORMAT": "json", "EMAIL_VERIFICATION": "false"})
    try:
        procs.start()
        procs.healthy()
        yield Flow(procs, mail_sink, media.video("observed.mp4", duration=3))
    finally:
        procs.stop()


def test_each_service_counts_one_conversion(flow):
    gateway = flow.metrics(c.GATEWAY)
    # route templates as labels, never raw paths
    assert value(gateway, "mp3svc_http_requests_total", route="/upload", method="POST",
                 status="202") == 1
    assert value(gateway, "mp3svc_http_request_seconds_count", route="/upload", method="POST") == 1
    assert value(gateway, "mp3svc_http_requests_total", route="/jobs/<job_id>", method="GET",
                 status="200") >= 1
    assert value(gateway, "mp3svc_http_requests_total", route="/healthz", method="GET",
                 status="200") >= 1
    assert not [key for key in gateway if JOB_ID.search(str(key[1]))], "a raw path as a label"
    assert value(gateway, "mp3svc_upload_bytes_total") == flow.video_size
    # computed from the store when scraped
    assert value(gateway, "mp3svc_jobs", status="done") == 1
    assert value(gateway, "mp3svc_jobs", status="queued") == 0
    assert value(gateway, "mp3svc_store_up") == 1
    assert value(gateway, "mp3svc_store_bytes") >= flow.job["size"]  # the MP3 (the video is gone)

    auth = flow.metrics(c.AUTH)
    assert value(auth, "mp3svc_logins_total", result="ok") >= 1
    assert value(auth, "mp3svc_logins_total", result="invalid_credentials") >= 1
    assert value(auth, "mp3svc_entrypoint_calls_total", service="auth", entrypoint="validate_token",
                 outcome="ok") >= 1

    converter = flow.metrics(c.CONVERTER)
    assert value(converter, "mp3svc_jobs_finished_total", status="done") == 1
    assert value(converter, "mp3svc_jobs_finished_total", status="failed") == 0
    assert value(converter, "mp3svc_conversion_seconds_count") == 1
    assert value(converter, "mp3svc_conversion_seconds_sum") > 0
    assert value(converter, "mp3svc_conversion_speed_count") == 1
    assert value(converter, "mp3svc_conversion_speed_sum") > 0.5  # 3 s of media, far under 6 s
    assert value(converter, "mp3svc_entrypoint_calls_total", service="converter",
                 entrypoint="handle_video_uploaded", outcome="ok") == 1

    # counted after the email is recorded as sent, a moment after the sink has it
    notification = wait_until(lambda: (lambda s: s if value(
        s, "mp3svc_emails_total", result="sent") == 1 else None)(flow.metrics(c.NOTIFICATION)),
        30, message="emails_total{result=sent} == 1")
    assert value(notification, "mp3svc_emails_total", result="failed") == 0

    for service, samples in ((c.GATEWAY, gateway), (c.AUTH, auth), (c.CONVERTER, converter),
                             (c.NOTIFICATION, notification)):
        assert value(samples, "process_resident_memory_bytes") > 0, service
    # the public port does not serve them
    assert requests.get(flow.procs.base + "/metrics", timeout=10).status_code == 404


def test_json_logs_follow_one_job(flow):
    wait_until(lambda: value(flow.metrics(c.NOTIFICATION), "mp3svc_emails_total", result="sent"),
               30, message="the email recorded as sent")
    lines_of = {}
    for service in SERVICES:
        lines_of[service] = []
        for line in flow.procs.log(service).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail("%s logged a line that is not JSON: %r" % (service, line))
            assert isinstance(record, dict)
            for key in ("time", "level", "service", "message"):
                assert key in record, (service, line)
            assert record["service"] == service
            lines_of[service].append(record)
    for service in (c.GATEWAY, c.CONVERTER, c.NOTIFICATION):
        ours = [r for r in lines_of[service] if r.get("job_id") == flow.job_id]
        assert ours, "%s has no line with job_id %s" % (service, flow.job_id)
    converted = [r for r in lines_of[c.CONVERTER] if r.get("job_id") == flow.job_id
                 and r.get("call_id", "").startswith("converter.handle_video_uploaded.")]
    assert converted and converted[0].get("parent_call_id", "").startswith("gateway.upload.")
    everything = "\n".join(flow.procs.log(service) for service in SERVICES)
    secrets = [PASSWORD, flow.token] + [line.strip() for line in flow.body.splitlines()
                                        if len(line.strip()) >= 16]
    for secret in secrets:
        assert secret not in everything, "logged: %r" % secret
    assert "Eventlet is deprecated" not in everything


@pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="Debian's prometheus package is not "
                    "installed (scripts/setup.sh installs it when run as root)")
def test_prometheus_scrapes_the_services(flow, tmp_path):
    port = free_port()
    with open(RULES) as handle:
        rule = yaml.safe_load(handle)
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    config = tmp_path / "prometheus.yml"
    targets = [flow.procs.metrics_url(service).split("/")[2] for service in SERVICES]
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "mp3svc", "static_configs": [{"targets": targets}]}]}))
    server = flow.procs.spawn("prometheus", [
        PROMETHEUS, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
        "--web.listen-address=127.0.0.1:%d" % port])
    wait_for_port("127.0.0.1", port, 60, server)
    ready = "http://127.0.0.1:%d/-/ready" % port
    wait_until(lambda: requests.get(ready, timeout=5).status_code == 200, 60, interval=0.5,
               message="Prometheus ready", proc=server)
    api = "http://127.0.0.1:%d/api/v1" % port

    def query(expr):
        body = requests.get(api + "/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    done = wait_until(lambda: query('mp3svc_jobs_finished_total{status="done"}'), 60,
                      interval=0.5, message="Prometheus to have mp3svc_jobs_finished_total")
    assert [float(r["value"][1]) for r in done] == [1.0]
    up = wait_until(lambda: (lambda r: r if len(r) == 4 else None)(query("up == 1")), 30,
                    interval=0.5, message="the four services up in Prometheus")
    assert sorted(r["metric"]["instance"] for r in up) == sorted(targets)
    # the alert rules load and evaluate against these metrics without errors
    groups = wait_until(lambda: (lambda g: g if g and all(
        r.get("lastEvaluation", "").startswith("2") and not r["lastEvaluation"].startswith("0001")
        for grp in g for r in grp["rules"]) else None)(
        requests.get(api + "/rules", timeout=10).json()["data"]["groups"]), 30, interval=0.5,
        message="every rule evaluated")
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
