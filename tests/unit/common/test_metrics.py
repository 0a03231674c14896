"""Observability pieces without a broker: the metrics names the deploy files use, the metrics ports
everywhere, the custom resources' schemas, the JSON log formatter and its context filter."""
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from devtools.stack import ROOT, SERVICES, Stack, clean_env, free_metrics_env, free_port, service_config
from services.auth import metrics as auth_metrics  # noqa: F401  (registers its metrics)
from services.common import logs
from services.common.metrics import MetricsServer, metrics_setting
from services.common.settings import Address, ConfigurationError
from services.converter import metrics as converter_metrics  # noqa: F401
from services.gateway import metrics as gateway_metrics
from services.notification import metrics as notification_metrics  # noqa: F401

ROOT = Path(ROOT)
MONITORING = ROOT / "kubernetes" / "components" / "monitoring"
PORTS = {"gateway": 9100, "auth": 9101, "converter": 9102, "notification": 9103}
# names in PromQL that are not metrics
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "deriv", "absent",
    "histogram_quantile", "predict_linear", "vector", "and", "or", "unless", "on", "ignoring", "le",
    "status", "route", "result", "component", "job", "service", "entrypoint", "outcome", "pod",
    "instance", "method", "humanizePercentage", "labels", "value", "bool"}


def exported_names():
    """Every series name the services' registries can expose, and Prometheus's own `up`."""
    names = {"up"}
    families = list(REGISTRY.collect()) + gateway_metrics.StoreCollector(None, 0).describe()
    for family in families:
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum"),
                    "gauge": ("",), "info": ("_info",)}.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
        names |= {sample.name for sample in family.samples}
    return names


def metric_names(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)            # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)            # ranges
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d.*|e\d*", w)}


def rules():
    return yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())


def dashboard():
    config_map = yaml.safe_load((MONITORING / "dashboard.yaml").read_text())
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    return json.loads(text)


def test_dashboard_is_json_and_uses_exported_metrics():
    board = dashboard()
    exported = exported_names()
    assert board["uid"] and board["panels"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            unknown = metric_names(target["expr"]) - exported
            assert not unknown, "%s: %s not exported" % (panel["title"], sorted(unknown))
    everything = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for name in ("mp3svc_http_requests_total", "mp3svc_jobs", "mp3svc_jobs_finished_total",
                 "mp3svc_conversion_seconds_bucket", "mp3svc_conversion_speed_bucket",
                 "mp3svc_logins_total", "mp3svc_emails_total", "mp3svc_upload_bytes_total"):
        assert name in everything


def test_alerts_use_exported_metrics_and_cover_the_incidents():
    exported = exported_names()
    alerts = {rule["alert"]: rule for group in rules()["spec"]["groups"] for rule in group["rules"]}
    for name, rule in alerts.items():
        unknown = metric_names(rule["expr"]) - exported
        assert not unknown, "%s: %s not exported" % (name, sorted(unknown))
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    for needed in ("Mp3svcBacklogGrowing", "Mp3svcConversionFailureRatio", "Mp3svcConversionsStalled",
                   "Mp3svcEmailFailing", "Mp3svcStoreNearlyFull", "Mp3svcServiceDown"):
        assert needed in alerts
    readme = (ROOT / "README.md").read_text()
    for name in alerts:
        assert name in readme, "README.md does not say what to do about %s" % name


def test_promtool_accepts_the_rules(tmp_path):
    promtool = subprocess.run(["which", "promtool"], capture_output=True, text=True).stdout.strip()
    if not promtool:
        pytest.skip("promtool not installed (Debian's prometheus package; scripts/setup.sh as root)")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rules()["spec"]["groups"]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 11 rules found" in proc.stdout


def test_custom_resources_are_checked_strictly(tmp_path):
    script = [sys.executable, "-m", "devtools.validate_crds"]
    files = sorted(str(path) for path in MONITORING.glob("*.yaml"))
    proc = subprocess.run(script + files, capture_output=True, text=True, cwd=ROOT)
    if "SKIP" in proc.stdout:
        pytest.skip(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    assert re.search(r"^[2-9] custom resource\(s\) checked .*, 0 failed$", proc.stdout, re.M), proc.stdout
    broken = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    broken["spec"]["podMetricsEndpoints"][0]["prot"] = "metrics"   # a typo the CRD refuses
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    proc = subprocess.run(script + [str(tmp_path / "broken.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "prot" in proc.stdout, proc.stdout


def test_metrics_ports_agree_everywhere():
    defaults = {key: value for service in SERVICES for key, value in service_config(service, {}).items()}
    configmap = yaml.safe_load((ROOT / "kubernetes/base/configmap.yaml").read_text())["data"]
    compose = yaml.safe_load((ROOT / "docker/docker-compose.yml").read_text())["services"]
    monitor = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    readme = (ROOT / "README.md").read_text()
    for service in SERVICES:
        key, port = metrics_setting(service), PORTS[service]
        assert defaults[key] == "127.0.0.1:%d" % port
        assert configmap[key] == "0.0.0.0:%d" % port
        assert compose[service]["environment"][key] == "0.0.0.0:%d" % port
        (deployment,) = [d for d in yaml.safe_load_all(
            (ROOT / ("kubernetes/base/%s.yaml" % service)).read_text()) if d["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"name": "metrics", "containerPort": port} in container["ports"]
        assert deployment["spec"]["template"]["metadata"]["labels"].items() >= \
            monitor["spec"]["selector"]["matchLabels"].items()
        assert "`%s`" % key in readme or key in readme


def test_make_run_says_where_the_metrics_are(tmp_path):
    assert Stack(tmp_path, clean_env()).metrics_url("converter") == "http://127.0.0.1:9102/metrics"
    moved = Stack(tmp_path, clean_env(AUTH_METRICS_ADDRESS="0.0.0.0:19101"))
    assert moved.metrics_url("auth") == "http://0.0.0.0:19101/metrics"
    free = free_metrics_env()
    assert sorted(free) == sorted(metrics_setting(s) for s in SERVICES)
    assert len(set(free.values())) == 4 and "127.0.0.1:910" not in " ".join(free.values())


def test_address_setting():
    field = Address()
    assert field.parse("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert field.parse(":9100") == ("0.0.0.0", 9100)
    assert field.parse("[::1]:9100") == ("::1", 9100)
    for bad in ("9100", "host:", "host:http", "host:70000"):
        with pytest.raises(ValueError):
            field.parse(bad)


class FakeSettings:
    def __init__(self, address):
        self.address = address

    def of(self, container):
        return SimpleNamespace(TEST_METRICS_ADDRESS=self.address)


def test_metrics_server_serves_the_registry_and_stops():
    port = free_port()
    server = MetricsServer(FakeSettings(("127.0.0.1", port)))
    server.container = SimpleNamespace(service_name="test")
    server.setup()
    server.start()
    try:
        response = requests.get("http://127.0.0.1:%d/metrics" % port, timeout=5)
        assert response.status_code == 200
        names = {f.name for f in text_string_to_metric_families(response.text)}
        assert {"process_resident_memory_bytes", "mp3svc_jobs_finished"} <= names
        assert response.headers.get("Connection", "").lower() == "close"
        # the port is taken: the service does not start, and says which setting to change
        other = MetricsServer(FakeSettings(("127.0.0.1", port)))
        other.container = SimpleNamespace(service_name="test")
        other.setup()
        with pytest.raises(ConfigurationError, match="TEST_METRICS_ADDRESS"):
            other.start()
    finally:
        server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:%d/metrics" % port, timeout=5)


def format_record(message, *args, **extra):
    record = logging.LogRecord("services.x", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    assert logs.ContextFilter().filter(record)
    return json.loads(logs.JsonFormatter(service="converter").format(record))


def test_json_lines_carry_the_context_and_mask_secrets():
    job = "0123456789abcdef0123456789abcdef"
    line = format_record("job %s: done", job)
    assert line["job_id"] == job and line["service"] == "converter" and line["level"] == "INFO"
    assert line["message"] == "job %s: done" % job and re.match(r"\d{4}-\d\d-\d\dT", line["time"])
    assert "call_id" not in line

    access = format_record('127.0.0.1 - - "GET /jobs/%s HTTP/1.1" 200' % job)
    assert access["job_id"] == job
    secret = format_record('"GET /verify?token=abc.def.ghi&x=1 HTTP/1.1" 200 Authorization: '
                           'Bearer eyJhbGciOi.eyJzdWIi.sig password=hunter22')
    assert "abc.def.ghi" not in secret["message"] and "eyJzdWIi" not in secret["message"]
    assert "hunter22" not in secret["message"] and "token=***" in secret["message"]

    # inside a worker: its call id, and the job its event or its arguments name
    class Service:
        def handle_video_uploaded(self, payload):
            pass

        def requeue_job(self, job_id):
            pass

    context = logs.LogContext()
    context.container = SimpleNamespace(service_cls=Service)
    rpc = SimpleNamespace(call_id="c.requeue_job.1", args=(job,), kwargs={}, immediate_parent_call_id=None,
                          entrypoint=SimpleNamespace(method_name="requeue_job"))
    context.worker_setup(rpc)
    assert format_record("requeued")["job_id"] == job
    context.worker_teardown(rpc)
    worker = SimpleNamespace(call_id="converter.handle_video_uploaded.1", args=({"job_id": job},),
                             kwargs={}, immediate_parent_call_id="gateway.upload.2",
                             entrypoint=SimpleNamespace(method_name="handle_video_uploaded"))
    context.worker_setup(worker)
    try:
        line = format_record("converting")
        assert line["call_id"] == "converter.handle_video_uploaded.1"
        assert line["parent_call_id"] == "gateway.upload.2" and line["job_id"] == job
    finally:
        context.worker_teardown(worker)
    assert "call_id" not in format_record("after the worker")


def test_logins_count_auth_errors_by_name():
    from services.auth import exceptions
    assert auth_metrics.result_of(exceptions.InvalidCredentials("x")) == "invalid_credentials"
    assert auth_metrics.result_of(exceptions.TooManyAttempts("x", 3)) == "too_many_attempts"
    assert auth_metrics.result_of(KeyError("x")) == "error"
