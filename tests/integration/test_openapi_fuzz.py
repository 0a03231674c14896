"""The OpenAPI document against the live gateway: schemathesis generates requests for every operation
from /openapi.json (valid and invalid ones, authenticated with a real token and HTTP Basic login) and
runs all its checks on each answer: never a 5xx; status code, content type, headers and body as
documented; auth enforced; undeclared methods get 405; schema-valid requests accepted, invalid ones
rejected. Plus /docs served from the gateway alone.

schemathesis (pinned in setup.cfg's test extra, in .venv beside werkzeug 2.3) runs as its CLI in a
subprocess, so its threads and event loop stay out of this eventlet-patched process; the services run
in this process (the `stack` fixture) and serve it meanwhile. A fixed seed makes the requests the same
on every run; EXAMPLES bounds them per operation and phase.

What is left out, and why:
- GET /openapi.json: schemathesis never calls the document it loaded; test_docs_page_is_served_by_the_
  gateway checks it.
- Nothing else: /upload is fuzzed too (generated files are small; stored, queued, failed as not media),
  without requiring every schema-valid request to succeed: options valid one by one can be refused
  together (`end` not after `start`, `bitrate` with `quality`), rules the document states in words.
  /download runs twice: once with a real MP3's id so that its Range and If-None-Match handling is
  fuzzed on a real file, once with generated ids; the first run does not require every
  schema-valid request to succeed, since a well-formed Range past the end of the file is rightly 416.
- The tus operations: 412 (wrong or missing `Tus-Resumable`, as tus requires) counts as rejecting
  invalid data; POST /uploads, like POST /upload, need not accept every schema-valid request
  (`Upload-Metadata` holds base64 option values the schema does not spell out). PATCH bodies are sent
  as raw bytes (schemathesis_hooks.py).
- POST /webhooks: a schema-valid URL is mostly refused (400 `invalid_url`: not http(s), or not a public
  address). No packet may leave this machine, so notification's resolver answers 127.0.0.1 for every
  name and its connections fail before they are made (`no_network` below): a webhook to a literal
  public address can be made, and its deliveries fail without a packet sent.
- Rate limits are raised for this test only, so that /register and /login get past 429
  `rate_limited` (documented, and tested in test_hostile_input.py) to their validation.
"""
import base64
import collections
import json
import os
import re
import sys
from pathlib import Path

import pytest
from eventlet.green import subprocess

from services.gateway.openapi.builder import ERROR_CODES
from tests.integration.conftest import ALL_SERVICES, Api
from tests.helpers import wait_until

EXAMPLES = 25          # per operation and phase
SEED = 20261125        # reproducible: the same requests every run
EMAIL, PASSWORD = "fuzz@example.com", "fuzzing password"
TIMEOUT = 240
ROOT = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
# tus answers a request without `Tus-Resumable: 1.0.0` with 412, as the protocol says: for invalid
# data of the tus operations, and a missing header, 412 is a rejection too
TUS_REJECTIONS = ("checks.negative_data_rejection.expected-statuses = "
                  "[400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 422, 428, 429]\n"
                  "checks.missing_required_header.expected-statuses = [400, 406, 412]\n")
TUS_OPERATIONS = ("POST /uploads", "HEAD /uploads/{upload_id}", "PATCH /uploads/{upload_id}",
                  "DELETE /uploads/{upload_id}")
# reached only with an emailed token (tests/integration/test_accounts.py): schema-valid requests with a
# made-up token are rightly refused (400 invalid_token), as are a made-up current password (403)
NEVER_ACCEPTED = ("POST /verify", "POST /password/reset", "PUT /account/password", "DELETE /account",
                  "POST /webhooks")
# ends the fuzzing token: fuzzed last, on its own
LOGOUT = "POST /logout"
REACHED = {"POST /register": 202, "POST /login": 200, "POST /upload": 202, "GET /jobs": 200,
           "GET /jobs/{job_id}": 200, "DELETE /jobs/{job_id}": 204, "GET /session": 200,
           "GET /docs/{asset}": 200, "GET /docs": 200, "GET /": 200, "GET /webhooks": 200,
           "POST /tokens": 201, "GET /tokens": 200}


@pytest.fixture
def no_network(monkeypatch):
    """Webhooks never leave this machine: every name resolves to 127.0.0.1 (refused: not public),
    and no delivery connects anywhere."""
    from services.notification import poster, targets

    def resolve(host, port, *args, **kwargs):
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    def connect(addresses, port, timeout):
        raise ConnectionRefusedError("no connection leaves the fuzzing test")
    monkeypatch.setattr(targets, "getaddrinfo", resolve)
    monkeypatch.setattr(poster, "connect", connect)


@pytest.fixture
def fuzz_stack(runner_factory, service_config, mail_sink, no_network):
    service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port,
                          REGISTER_RATE="100000/minute", LOGIN_RATE="100000/minute")
    runner = runner_factory(service_config, *ALL_SERVICES)
    runner.start()
    api = Api("http://" + service_config["WEB_SERVER_ADDRESS"])
    wait_until(lambda: api.http.get(api.url("/healthz")).status_code == 200, 30,
               message="gateway healthy")
    yield api
    api.http.close()


def schemathesis_cli():
    return str(Path(sys.executable).with_name("schemathesis"))


def schemathesis(stack, tmp_path, name, token, config="", *args):
    """Runs the schemathesis CLI against the live gateway; (exit code, output, statuses by operation)."""
    config_file = tmp_path / ("%s.toml" % name)
    # credentials per security scheme of the document: Bearer for the API, Basic for /login
    config_file.write_text(
        '[auth.openapi.bearerAuth]\nbearer = "${FUZZ_TOKEN}"\n'
        '[auth.openapi.basicAuth]\nusername = "${FUZZ_EMAIL}"\npassword = "${FUZZ_PASSWORD}"\n'
        '[checks]\nenabled = true\n' + config)  # every check, but where `config` turns one off
    report = tmp_path / ("%s.ndjson" % name)
    command = [schemathesis_cli(), "--no-color", "--config-file", str(config_file), "run",
               stack.url("/openapi.json"), "--max-examples", str(EXAMPLES),
               "--seed", str(SEED), "--workers", "1", "--phases", "examples,coverage,fuzzing",
               "--request-timeout", "30", "--report", "ndjson", "--report-ndjson-path", str(report),
               "--suppress-health-check", "too_slow", "--warnings", "off", *args]
    env = dict(os.environ, FUZZ_TOKEN=token, FUZZ_EMAIL=EMAIL, FUZZ_PASSWORD=PASSWORD,
               NO_COLOR="1", COLUMNS="200", SCHEMATHESIS_HOOKS=str(HOOKS),
               PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               cwd=str(tmp_path))
    output, _ = process.communicate(timeout=TIMEOUT)
    output = output.decode("utf-8", "replace")
    statuses = answers(report) if report.exists() else {}
    if report.exists():
        assert_documented_codes(stack, report)
    print(output[output.rfind("SUMMARY"):] if "SUMMARY" in output else output[-4000:])
    for label, counts in sorted(statuses.items()):
        print("%-22s %s" % (label, dict(sorted(counts.items()))))
    return process.returncode, output, statuses


def test_schemathesis_against_live_gateway(fuzz_stack, media, tmp_path):
    token = fuzz_stack.token_for(EMAIL, PASSWORD)
    # one converted job, so that job ids, mp3 ids and a real MP3 exist to be found
    job_id = fuzz_stack.upload(token, media.video("fuzz.mp4", duration=1.0)).json()["job_id"]
    mp3_id = fuzz_stack.wait_job(token, job_id)["mp3_id"]
    assert mp3_id
    document = fuzz_stack.http.get(fuzz_stack.url("/openapi.json")).json()
    # schemathesis never calls the path it loaded the document from (GET /openapi.json, tested in
    # test_docs_page_is_served_by_the_gateway below): every other operation must be tested
    operations = sum(len(methods) for path, methods in document["paths"].items() if path != "/openapi.json")

    # GET /download alone first, with the real MP3's id, so that its Range and If-None-Match headers
    # are fuzzed on a file that exists (generated ids only reach 400/404; the run of every operation
    # below may DELETE the job). Not checked here: that every schema-valid request succeeds, since a
    # well-formed Range past the end of the file is rightly 416.
    code, output, statuses = schemathesis(
        fuzz_stack, tmp_path, "download", token,
        '[[operations]]\ninclude-name = "GET /download"\nparameters = { fid = "%s" }\n'
        'checks.positive_data_acceptance.enabled = false\n' % mp3_id,
        "--include-name", "GET /download")
    assert code == 0, output[-20000:]
    assert statuses["GET /download"][200] > 0, statuses

    # POST /upload and POST /uploads: schema-valid options can still be refused together (end not after
    # start; bitrate with quality): rules between fields the document states in words, not in JSON
    # Schema; and Upload-Metadata's syntax (base64 values) is not a pattern
    code, output, statuses = schemathesis(
        fuzz_stack, tmp_path, "all", token,
        '[[operations]]\ninclude-name = "POST /upload"\nchecks.positive_data_acceptance.enabled = false\n'
        '[[operations]]\ninclude-name = "POST /uploads"\nchecks.positive_data_acceptance.enabled = false\n'
        + TUS_REJECTIONS
        + "".join('[[operations]]\ninclude-name = "%s"\n%s' % (name, TUS_REJECTIONS)
                  for name in TUS_OPERATIONS[1:])
        + "".join('[[operations]]\ninclude-name = "%s"\nchecks.positive_data_acceptance.enabled = false\n'
                  % name for name in NEVER_ACCEPTED),
        "--exclude-name", LOGOUT)
    assert code == 0, output[-20000:]
    assert re.search(r"Selected: %d/%d\s+Tested: %d\b" % (operations - 1, operations, operations - 1),
                     output), output[-3000:]
    assert len(statuses) == operations - 1
    # authenticated, and past validation: each of these succeeded at least once
    for label, status in REACHED.items():
        assert statuses[label][status] > 0, (label, statuses[label])

    # last, POST /logout: the first schema-valid call ends the token (then 401 is right)
    code, output, statuses = schemathesis(
        fuzz_stack, tmp_path, "logout", token,
        '[[operations]]\ninclude-name = "%s"\nchecks.positive_data_acceptance.enabled = false\n' % LOGOUT,
        "--include-name", LOGOUT)
    assert code == 0, output[-20000:]
    assert statuses[LOGOUT][204] == 1, statuses
    assert fuzz_stack.http.get(fuzz_stack.url("/jobs"), headers={
        "Authorization": "Bearer " + token}).status_code == 401


def test_docs_page_is_served_by_the_gateway(stack):
    document = stack.http.get(stack.url("/openapi.json"))
    assert document.status_code == 200
    assert document.headers["Content-Type"] == "application/json"
    assert document.json()["openapi"].startswith("3.1")
    page = stack.http.get(stack.url("/docs"))
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links and not [a for a in links if not a.startswith("/")], links  # no CDN
    assets = [link for link in links if link.startswith("/docs/")]
    assert len(assets) == 3, links  # stylesheet, Swagger UI, its set-up
    for asset in assets:
        response = stack.http.get(stack.url(asset))
        assert response.status_code == 200, asset
        assert len(response.content) == int(response.headers["Content-Length"]) > 0
        again = stack.http.get(stack.url(asset), headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
    for name in ("../service.py", "..%2Fapi.py", "nope.js"):
        missing = stack.http.get(stack.url("/docs/" + name))
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found"), name


def assert_documented_codes(stack, report):
    """Every error answered has a code its operation documents for that status (`x-error-codes`:
    the one shared Error schema does not list them, so schemathesis cannot check this itself)."""
    document = stack.http.get(stack.url("/openapi.json")).json()
    documented = {"%s %s" % (method.upper(), path): spec.get(ERROR_CODES, {})
                  for path, methods in document["paths"].items() for method, spec in methods.items()}
    wrong = set()
    for line in report.read_text().splitlines():
        recorder = json.loads(line).get("ScenarioFinished", {}).get("recorder", {})
        codes = documented.get(recorder.get("label"), {})
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response") or {}
            status = str(response.get("status_code"))
            if status not in codes:  # a success, or a status schemathesis checks against the document
                continue
            try:
                code = json.loads(base64.b64decode(response["content"]["$base64"])).get("error")
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # not the error JSON: schemathesis's own checks say so
            if code not in codes[status]:
                wrong.add((recorder["label"], status, code))
    assert not wrong, sorted(wrong)


def answers(report):
    """operation label -> Counter of the status codes it answered, from schemathesis' NDJSON report."""
    statuses = collections.defaultdict(collections.Counter)
    for line in report.read_text().splitlines():
        event = json.loads(line)
        recorder = event.get("ScenarioFinished", {}).get("recorder", {})
        for interaction in recorder.get("interactions", {}).values():
            if interaction.get("response"):
                statuses[recorder["label"]][interaction["response"]["status_code"]] += 1
    return statuses
