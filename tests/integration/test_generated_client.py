"""A client generated from the live gateway's /openapi.json with openapi-python-client (0.29.1, in
.venv-openapi from scripts/setup.sh, with client/openapi-python-client.yaml), as many scripts start:
every operation gets a function, errors one model, and the whole flow runs through it: register,
confirm the emailed link, log in, upload with options, follow the job, download the MP3, an archive,
a resumable (tus) upload, list, delete, log out."""
import base64
import importlib
import io
import os
import re
import sys
import zipfile
from pathlib import Path

import pytest
from eventlet.green import subprocess

from tests.helpers import wait_until
from tests.integration.accounts import links_to, new_link, token_of
from tests.integration.conftest import ALL_SERVICES, Api

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / ".venv-openapi" / "bin" / "openapi-python-client"
CONFIG = ROOT / "client" / "openapi-python-client.yaml"
PACKAGE = "mp3svc_api"
EMAIL, PASSWORD = "generated@example.com", "correct horse battery"


@pytest.fixture
def stack(runner_factory, service_config, mail_sink):
    """Every service, with addresses confirmed by email as in production."""
    service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port, EMAIL_VERIFICATION=True)
    service_config["PUBLIC_URL"] = "http://" + service_config["WEB_SERVER_ADDRESS"]
    runner_factory(service_config, *ALL_SERVICES).start()
    api = Api(service_config["PUBLIC_URL"])
    wait_until(lambda: api.http.get(api.url("/healthz")).status_code == 200, 30, message="gateway healthy")
    api.mail = mail_sink
    yield api
    api.http.close()


@pytest.fixture
def generated(stack, tmp_path):
    """(the generated package, the document it was generated from)."""
    assert GENERATOR.exists(), "%s is missing: run scripts/setup.sh" % GENERATOR
    document = stack.http.get(stack.url("/openapi.json"))
    assert document.status_code == 200
    (tmp_path / "openapi.json").write_bytes(document.content)
    env = dict(os.environ, PATH=os.pathsep.join([str(GENERATOR.parent), os.environ.get("PATH", "")]))
    process = subprocess.run(
        [str(GENERATOR), "generate", "--path", "openapi.json", "--meta", "none", "--output-path", PACKAGE,
         "--config", str(CONFIG)], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    output = process.stdout + process.stderr
    assert process.returncode == 0, output
    assert "WARNING" not in output and "will not be generated" not in output, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE), document.json(), tmp_path / PACKAGE
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def api(package, tag, operation_id):
    """The module of one operation: api/<tag>/<operationId>.py."""
    return importlib.import_module("%s.api.%s.%s" % (PACKAGE, re.sub(r"\W+", "_", tag), operation_id))


def test_every_operation_gets_a_function_and_errors_one_model(generated):
    package, document, directory = generated
    operations = [(spec["tags"][0], spec["operationId"])
                  for methods in document["paths"].values() for spec in methods.values()]
    assert len(operations) >= 30
    for tag, operation_id in operations:
        module = api(package, tag, operation_id)
        assert callable(module.sync_detailed), operation_id
    models = sorted(path.stem for path in (directory / "models").glob("*.py") if path.stem != "__init__")
    # request and response models and their enums, none per error answer (there were 132 models
    # when each error response had a schema of its own)
    assert not [name for name in models if re.search(r"response_[45]\d\d", name)], models
    assert len(models) <= 2 * len(document["components"]["schemas"]), models
    # the error body: one model (and /healthz's 503, which extends it with what is failing)
    errors = [name for name in models if {"error", "message"} <= fields(name)]
    assert errors == ["error", "unhealthy"], errors


def fields(model_module):
    """The fields of the class a generated models/<module>.py defines."""
    module = importlib.import_module("%s.models.%s" % (PACKAGE, model_module))
    found = set()
    for value in vars(module).values():
        if isinstance(value, type) and value.__module__ == module.__name__:
            found |= set(getattr(value, "__annotations__", {}))
    return found


def test_the_whole_flow_through_the_generated_client(generated, stack, media):
    package, _, _ = generated
    models = importlib.import_module(PACKAGE + ".models")
    types = importlib.import_module(PACKAGE + ".types")
    public = package.Client(base_url=stack.base, raise_on_unexpected_status=True)

    # register, confirm the emailed link, log in (HTTP Basic)
    known = links_to(stack.mail, EMAIL, "verify")
    registered = api(package, "users", "register").sync_detailed(
        client=public, body=models.RegisterBody(email=EMAIL, password=PASSWORD))
    assert registered.status_code == 202 and registered.parsed.status == "verification_sent"
    link = new_link(stack.mail, EMAIL, "verify", known)
    verified = api(package, "users", "verify").sync(
        client=public, body=models.TokenBody(token=token_of(link)))
    assert verified.verified is True
    basic = package.AuthenticatedClient(
        base_url=stack.base, prefix="Basic",
        token=base64.b64encode(("%s:%s" % (EMAIL, PASSWORD)).encode()).decode())
    login = api(package, "users", "login").sync(client=basic)
    assert isinstance(login, models.Token) and login.token_type == "Bearer"
    client = package.AuthenticatedClient(base_url=stack.base, token=login.token)

    # upload with options, follow the job, download its MP3
    video = media.video("generated.mp4", duration=2.0)
    with open(video, "rb") as handle:
        accepted = api(package, "jobs", "upload").sync(client=client, body=models.UploadForm(
            file=types.File(payload=handle, file_name="generated talk.mp4"),
            bitrate=models.UploadFormBitrate.VALUE_64, channels=1, title="Generated"))
    assert isinstance(accepted, models.UploadAccepted), accepted
    job = wait_done(package, client, accepted.job_id)
    assert job.filename == "generated talk.mp4"
    assert (job.options.bitrate, job.options.channels, job.options.title) == (64, 1, "Generated")
    mp3 = api(package, "jobs", "download").sync(client=client, fid=job.mp3_id)
    assert isinstance(mp3, types.File)
    audio = mp3.payload.read()
    assert len(audio) == job.size and audio[:3] == b"ID3"

    # errors come back as the one Error model
    missing = api(package, "jobs", "get_job").sync(client=client, job_id="f" * 32)
    assert isinstance(missing, models.Error) and missing.error == "not_found"

    # a resumable upload: OPTIONS, create, PATCH all of it, HEAD; then its job converts
    options = api(package, "resumable uploads", "tus_options").sync_detailed(client=public)
    assert options.status_code == 204 and "creation" in options.headers["Tus-Extension"]
    data = open(media.video("generated-tus.mp4", duration=1.0), "rb").read()
    created = api(package, "resumable uploads", "tus_create").sync_detailed(
        client=client, upload_length=str(len(data)),
        upload_metadata="filename " + base64.b64encode(b"resumed.mp4").decode())
    assert created.status_code == 201, created.content
    upload_id = created.headers["Location"].rsplit("/", 1)[-1]
    patched = api(package, "resumable uploads", "tus_patch").sync_detailed(
        upload_id, client=client, body=types.File(payload=io.BytesIO(data)), upload_offset="0")
    assert patched.status_code == 204 and patched.headers["Upload-Offset"] == str(len(data))
    head = api(package, "resumable uploads", "tus_head").sync_detailed(upload_id, client=client)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == str(len(data))
    resumed = wait_done(package, client, upload_id)
    assert resumed.filename == "resumed.mp4"
    abandoned = api(package, "resumable uploads", "tus_create").sync_detailed(
        client=client, upload_length="10")
    terminated = api(package, "resumable uploads", "tus_terminate").sync_detailed(
        abandoned.headers["Location"].rsplit("/", 1)[-1], client=client)
    assert terminated.status_code == 204

    # both MP3s as one archive; the list; delete; log out
    archive = api(package, "jobs", "archive").sync(
        client=client, body=models.ArchiveBody(job_ids=[job.job_id, resumed.job_id]))
    assert isinstance(archive, types.File)
    with zipfile.ZipFile(archive.payload) as zipped:
        assert zipped.testzip() is None
        assert zipped.namelist() == ["generated talk.mp3", "resumed.mp3"]
        assert zipped.read("generated talk.mp3") == audio
    listed = api(package, "jobs", "list_jobs_http").sync(client=client)
    assert {j.job_id for j in listed.jobs} == {job.job_id, resumed.job_id}
    deleted = api(package, "jobs", "delete_job").sync_detailed(resumed.job_id, client=client)
    assert deleted.status_code == 204
    assert api(package, "users", "logout").sync_detailed(client=client).status_code == 204
    ended = api(package, "jobs", "list_jobs_http").sync(client=client)
    assert isinstance(ended, models.Error) and ended.error == "invalid_token"


def wait_done(package, client, job_id):
    get_job = api(package, "jobs", "get_job")

    def finished():
        job = get_job.sync(client=client, job_id=job_id)
        return job if job.status in ("done", "failed") else None
    job = wait_until(finished, 60, interval=0.2, message="job %s to finish" % job_id)
    assert job.status == "done", job.error
    return job
