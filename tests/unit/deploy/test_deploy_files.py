"""Deployment files (docker/, kubernetes/): the offline validation script passes, plus the
structural rules that schema validators cannot express."""
import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools
import yaml

from devtools.stack import ROOT, SERVICES, consumer_queue
from services.common import constants
from services.common.metrics import metrics_setting
from services.common.container import SSL_CA_KEY, own_uri_key
from services.common.settings import MongoSettings
from services.converter.settings import ConverterSettings
from services.gateway.settings import GatewaySettings

ROOT = Path(ROOT)

# The variables the services may be configured with (README "Configuration", /tmp/interfaces.md).
CONTRACT_VARS = {
    "GATEWAY_ADDRESS", "PUBLIC_URL", "AMQP_URI", "MONGO_URI", "AUTH_DB_URI", "SMTP_HOST",
    "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS", "MAIL_FROM", "JWT_SECRET",
    "MAX_UPLOAD_BYTES", "ALLOW_REGISTRATION", "USER_QUOTA_BYTES", "USER_MAX_ACTIVE_JOBS",
    "RETENTION_HOURS",
}
EXTRA_VARS = {
    setting.variable for setting in (
        MongoSettings.MONGO_DB, MongoSettings.PREFETCH_COUNT, ConverterSettings.CONVERT_TIMEOUT,
        ConverterSettings.MAX_DURATION, MongoSettings.RABBIT_QUEUE_TYPE,
        GatewaySettings.AUTH_RPC_TIMEOUT)}
DOCUMENTED = CONTRACT_VARS | EXTRA_VARS
DOCUMENTED |= {"CLIENT_TIMEOUT", "LOGIN_RATE", "REGISTER_RATE", "TRUSTED_PROXIES"}  # issue 9 (edge)
DOCUMENTED |= {metrics_setting(svc) for svc in SERVICES} | {"LOG_FORMAT"}  # issue 19 (observability)
# issue 17 (inside): each service's broker user, TLS, event exchanges declared ahead, ffmpeg limits
OWN_URI = {svc: own_uri_key(svc) for svc in SERVICES}
DOCUMENTED |= set(OWN_URI.values()) | {SSL_CA_KEY, "DECLARE_EVENT_EXCHANGES"}
DOCUMENTED |= {name for name in ConverterSettings.fields() if name.startswith("FFMPEG_MAX_")}
DOCUMENTED |= {"STORAGE_LIMIT_BYTES"}  # issue 18 (fair and bounded)
SECRETS_DIR = "/run/secrets/mp3svc"  # docker/entrypoint.sh exports each file in it
DOCUMENTED |= {"EMAIL_VERIFICATION", "VERIFY_TTL_HOURS", "RESET_TTL_MINUTES", "USER_EMAIL_RATE",
               "UPLOAD_RATE"}  # issue 16 (accounts)
DOCUMENTED |= {"WEBHOOK_ALLOW_PRIVATE", "WEBHOOK_TIMEOUT", "WEBHOOK_RETRY_BASE", "WEBHOOK_RETRY_HOURS",
               "NOTIFICATION_RPC_TIMEOUT"}  # issue 21 (webhooks)
IMAGE_VARS = {"SERVICE"}  # read by docker/entrypoint.sh
SECRET_VARS = {"JWT_SECRET", "SMTP_PASSWORD", "AUTH_DB_URI", "MONGO_URI", "AMQP_URI"} | set(
    own_uri_key(svc) for svc in ("gateway", "auth", "converter", "notification"))
# what a deployment must set when the service reads it (the local defaults point at 127.0.0.1)
MUST_SET = {
    "AMQP_URI", "MONGO_URI", "AUTH_DB_URI", "JWT_SECRET", "SMTP_HOST", "PUBLIC_URL", "MAIL_FROM",
}
CONVERTER_QUEUE = consumer_queue(constants.GATEWAY, constants.VIDEO_UPLOADED)
FORM_OVERHEAD = 64 * 1024


def load_all(path):
    with open(ROOT / path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def load(path):
    (doc,) = load_all(path)
    return doc


def config_vars(service):
    """Environment variables that config/<service>.yaml reads."""
    text = (ROOT / "config" / (service + ".yaml")).read_text()
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))


def quantity(value):
    """CPU quantity in cores: "2" -> 2.0, "500m" -> 0.5."""
    value = str(value)
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def size_bytes(value):
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    value = str(value).lower()
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


# --- the offline validation script -------------------------------------------------------

def venv_dir():
    if (Path(sys.prefix) / "bin" / "hadolint").exists():
        return sys.prefix
    return str(ROOT / ".venv")


def test_validate_deploy_script_passes():
    env = dict(os.environ, VENV=venv_dir())
    proc = subprocess.run(["bash", "scripts/validate-deploy.sh"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    print(proc.stdout)
    assert proc.returncode == 0, "scripts/validate-deploy.sh failed:\n" + proc.stdout


# --- docker ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose():
    return load("docker/docker-compose.yml")["services"]


def compose_secret_files(svc):
    """The variables scripts/compose-secrets.sh writes into docker/secrets/<svc>, which compose
    mounts at /run/secrets/mp3svc."""
    script = (ROOT / "scripts" / "compose-secrets.sh").read_text()
    assert '> "$own/AMQP_URI_$upper"' in script and '"$mongo_options" > "$own/MONGO_URI"' in script
    return {OWN_URI[svc], "AMQP_URI"} | ({"MONGO_URI"} if svc != constants.AUTH else set())


def test_compose_services_use_only_documented_variables(compose):
    for svc in SERVICES:
        env = compose[svc]["environment"]
        assert env["SERVICE"] == svc
        unknown = set(env) - DOCUMENTED - IMAGE_VARS
        assert not unknown, "%s sets undocumented variables %s" % (svc, sorted(unknown))
        unread = set(env) - config_vars(svc) - IMAGE_VARS
        assert not unread, "%s sets %s, unread by config/%s.yaml" % (svc, sorted(unread), svc)
        assert "./secrets/%s:%s:ro" % (svc, SECRETS_DIR) in compose[svc]["volumes"], svc
        missing = (MUST_SET & config_vars(svc)) - set(env) - compose_secret_files(svc)
        assert not missing, "%s needs %s" % (svc, sorted(missing))
        assert not SECRET_VARS - {"JWT_SECRET", "AUTH_DB_URI"} & set(env), svc
    assert compose[constants.GATEWAY]["environment"]["GATEWAY_ADDRESS"] == "0.0.0.0:8080"


def test_compose_secrets_come_from_the_environment(compose):
    password = compose["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD:?")
    assert "${POSTGRES_PASSWORD:?" in compose[constants.AUTH]["environment"]["AUTH_DB_URI"]
    for svc in SERVICES:
        if "JWT_SECRET" in compose[svc]["environment"]:
            assert compose[svc]["environment"]["JWT_SECRET"].startswith("${JWT_SECRET:?"), svc


def test_compose_health_checks_and_start_order(compose):
    for name, svc in compose.items():
        assert svc.get("healthcheck", {}).get("test"), "%s has no health check" % name
    for name in SERVICES:
        svc = compose[name]
        deps = svc["depends_on"]
        assert "rabbitmq" in deps
        assert all(d["condition"] == "service_healthy" for d in deps.values()), name
        assert svc["read_only"] is True
        if name != constants.GATEWAY:
            probe = ["CMD", "python", "-m", "services.common.probe", name]
            assert svc["healthcheck"]["test"] == probe
    assert "/healthz" in " ".join(compose[constants.GATEWAY]["healthcheck"]["test"])
    assert "rs.initiate" in " ".join(compose["mongo"]["healthcheck"]["test"])
    converter = compose[constants.CONVERTER]
    assert "ports" not in converter and "container_name" not in converter, "converter must scale"
    assert converter["stop_grace_period"] == "1h"


def test_compose_scale_file_adds_converters():
    converter = load("docker/docker-compose.scale.yml")["services"][constants.CONVERTER]
    assert "replicas" in converter["deploy"]
    assert "CONVERTER_WORKERS" in converter["deploy"]["resources"]["limits"]["cpus"]


def dockerfile_stages():
    text = (ROOT / "docker/Dockerfile").read_text()
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def test_dockerfile_runtime_stage():
    stages = dockerfile_stages()
    assert len(stages) == 2 and " AS builder" in stages[0].splitlines()[0]
    final = stages[-1]
    assert "pip wheel" in stages[0]
    assert "--no-install-recommends ffmpeg" in final
    assert not re.search(r"\b(gcc|g\+\+|build-essential|python3-dev)\b", final)
    assert re.search(r"^USER 10001", final, re.M)
    assert re.search(r"^WORKDIR /app$", final, re.M)
    assert re.search(r"^COPY config \./config$", final, re.M)
    assert "PYTHONUNBUFFERED=1" in final


def test_image_and_package_hold_the_services_only():
    """Dev tooling (devtools/, bench/, tests/) is neither installed nor sent to the image, and the
    services import none of it (aiosmtpd, the mail sink's dependency, is not in the image)."""
    allowed = [line[1:] for line in (ROOT / "docker/Dockerfile.dockerignore").read_text().split()
               if line.startswith("!")]
    assert "services/" in allowed
    assert not [path for path in allowed if path.startswith(("devtools", "bench", "tests"))]
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    include = [name.strip() for name in config["options.packages.find"]["include"].split(",")]
    packages = setuptools.find_packages(str(ROOT), include=include)
    assert "services" in packages and {name.split(".")[0] for name in packages} == {"services"}
    for path in (ROOT / "services").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) (devtools|aiosmtpd|tests)\b", path.read_text(), re.M), path


def run_entrypoint(tmp_path, service, *args):
    fake = tmp_path / "nameko"
    fake.write_text('#!/bin/sh\necho "nameko $*"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ["PATH"]), SERVICE=service)
    return subprocess.run(["sh", str(ROOT / "docker/entrypoint.sh"), *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)


def test_entrypoint_runs_the_chosen_service(tmp_path):
    for svc in SERVICES:
        proc = run_entrypoint(tmp_path, svc)
        assert proc.returncode == 0, proc.stderr
        expected = "nameko run --config config/%s.yaml services.%s.service" % (svc, svc)
        assert proc.stdout.strip() == expected


def test_entrypoint_rejects_unknown_services(tmp_path):
    for bad in ("", "storage", "gateway;id", "../gateway"):
        proc = run_entrypoint(tmp_path, bad)
        assert proc.returncode == 64 and proc.stdout == "", (bad, proc.stdout)
        assert "SERVICE must be" in proc.stderr


# --- kubernetes --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base():
    kustomization = load("kubernetes/base/kustomization.yaml")
    assert "secret.example.yaml" not in kustomization["resources"]
    docs = []
    for name in kustomization["resources"]:
        docs += load_all("kubernetes/base/" + name)
    return docs


def kind(docs, k):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == k}


@pytest.fixture(scope="module")
def configmap(base):
    return kind(base, "ConfigMap")["mp3svc-config"]["data"]


def test_every_deployment_is_probed_limited_and_hardened(base):
    deployments = kind(base, "Deployment")
    pdbs = kind(base, "PodDisruptionBudget")
    assert set(deployments) == set(SERVICES)
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            assert c["image"] == "mp3svc"
            assert c["readinessProbe"] and c["livenessProbe"], name
            if name != constants.GATEWAY:
                assert c["livenessProbe"]["exec"]["command"] == \
                    ["python", "-m", "services.common.probe", name]
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][section]), (name, section)
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], name
        assert name in pdbs, "no PodDisruptionBudget for %s" % name
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_env_is_documented_and_secret_values_stay_in_the_secret(base, configmap):
    assert set(configmap) <= DOCUMENTED
    assert not set(configmap) & SECRET_VARS
    example = load("kubernetes/base/secret.example.yaml")
    assert all(v == "" for v in example["stringData"].values()), "the example Secret holds values"
    for name, dep in kind(base, "Deployment").items():
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        assert c["envFrom"] == [{"configMapRef": {"name": "mp3svc-config"}}]
        files = secret_files(dep)
        assert set(files) <= SECRET_VARS and OWN_URI[name] in files, (name, files)
        for key in files.values():
            assert key in example["stringData"], (name, key)
        env = {e["name"]: e for e in c["env"]}
        assert not set(env) & SECRET_VARS, "%s: secrets as files, not variables" % name
        assert env["SERVICE"]["value"] == name
        assert set(env) <= DOCUMENTED | IMAGE_VARS
        assert set(env) - IMAGE_VARS <= config_vars(name), name
        for var in SECRET_VARS & set(env):
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "mp3svc-secrets", (name, var)
            assert ref["key"] in example["stringData"], (name, var)
        missing = (MUST_SET & config_vars(name)) - set(env) - set(configmap) - set(files) - {"AMQP_URI"}
        assert not missing, "%s needs %s" % (name, sorted(missing))


def secret_files(dep):
    """{variable: Secret key} of the files a Deployment mounts at /run/secrets/mp3svc (from Secret
    mp3svc-secrets only; the CA certificate goes to tls/ca.crt)."""
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == SECRETS_DIR]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    files = {}
    for source in volume["projected"]["sources"]:
        secret = source["secret"]
        for item in secret["items"]:
            if secret["name"] == "mp3svc-secrets":
                files[item["path"]] = item["key"]
            else:
                assert (secret["name"], item) == ("rabbitmq-tls", {"key": "ca.crt", "path": "tls/ca.crt"})
    return files


def test_converter_workers_match_cpu_and_grace_covers_a_conversion(base, configmap):
    dep = kind(base, "Deployment")[constants.CONVERTER]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    workers = int({e["name"]: e.get("value") for e in c["env"]}["CONVERTER_WORKERS"])
    assert quantity(c["resources"]["limits"]["cpu"]) == workers
    assert quantity(c["resources"]["requests"]["cpu"]) == workers
    assert pod["terminationGracePeriodSeconds"] >= int(configmap[ConverterSettings.CONVERT_TIMEOUT.variable])
    assert "replicas" not in dep["spec"], "the HPA owns the converter's replicas"
    hpa = kind(base, "HorizontalPodAutoscaler")[constants.CONVERTER]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == constants.CONVERTER
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_gateway_probes_service_and_ingress(base, configmap):
    (c,) = kind(base, "Deployment")[constants.GATEWAY]["spec"]["template"]["spec"]["containers"]
    # ready only with its dependencies; alive as long as it serves HTTP (an outage of MongoDB or
    # the broker must not restart every gateway)
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["ports"] == [{"name": "http", "containerPort": 8080},
                          {"name": "metrics", "containerPort": 9100}]
    assert configmap["GATEWAY_ADDRESS"].endswith(":8080")
    assert kind(base, "Service")[constants.GATEWAY]["spec"]["ports"][0]["targetPort"] == "http"
    notes = kind(base, "Ingress")[constants.GATEWAY]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    body = size_bytes(notes[prefix + "proxy-body-size"])
    assert body >= int(configmap[GatewaySettings.MAX_UPLOAD_BYTES.variable]) + FORM_OVERHEAD
    assert notes[prefix + "proxy-request-buffering"] == "off"
    assert int(notes[prefix + "proxy-read-timeout"]) >= 300


def test_operator_resources():
    rabbit = load_all("kubernetes/operators/rabbitmq.yaml")
    cluster = kind(rabbit, "RabbitmqCluster")["rabbitmq"]
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1" and cluster["spec"]["replicas"] == 3
    policy = kind(rabbit, "Policy")["mp3svc-quorum"]["spec"]
    assert policy["applyTo"] == "quorum_queues"
    assert re.match(policy["pattern"], CONVERTER_QUEUE)
    assert re.match(policy["pattern"], "rpc-" + constants.AUTH)
    assert not re.match(policy["pattern"], "rpc.reply-gateway-0f1e"), "reply queues are exclusive"
    assert policy["definition"]["delivery-limit"] > 1
    dlx = policy["definition"]["dead-letter-exchange"]
    assert dlx in {e["spec"]["name"] for e in kind(rabbit, "Exchange").values()}
    for doc in rabbit:
        if doc["kind"] != "RabbitmqCluster":
            assert doc["spec"]["rabbitmqClusterReference"]["name"] == "rabbitmq"
    mongo = load("kubernetes/operators/mongodb.yaml")
    assert mongo["apiVersion"] == "mongodbcommunity.mongodb.com/v1"
    assert mongo["kind"] == "MongoDBCommunity"
    assert mongo["spec"]["members"] == 3 and mongo["spec"]["type"] == "ReplicaSet"
    prod = (ROOT / "kubernetes/overlays/prod/kustomization.yaml").read_text()
    assert re.search(r"path: /data/%s\s+value: quorum" % MongoSettings.RABBIT_QUEUE_TYPE.variable, prod)


def test_keda_component_scales_on_the_converter_queue():
    component = load("kubernetes/components/keda/kustomization.yaml")
    assert component["kind"] == "Component"
    assert "HorizontalPodAutoscaler" in component["patches"][0]["patch"]
    assert "$patch: delete" in component["patches"][0]["patch"]
    keda = load_all("kubernetes/components/keda/scaledobject.yaml")
    scaled = kind(keda, "ScaledObject")[constants.CONVERTER]
    assert scaled["spec"]["scaleTargetRef"]["name"] == constants.CONVERTER
    (rabbit,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"]
    assert rabbit["metadata"]["queueName"] == CONVERTER_QUEUE
    assert "keda" not in " ".join(load("kubernetes/base/kustomization.yaml")["resources"])
