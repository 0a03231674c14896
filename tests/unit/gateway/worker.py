"""A GatewayService worker for unit tests (nameko's worker_factory: every dependency a MagicMock unless
given) and in-memory werkzeug requests."""
import io

from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.common import constants as c
from services.common.jobs import Job
from services.gateway.service import GatewayService
from services.gateway.settings import GatewaySettings
from tests.configs import config_defaults

OWNER = "me@example.com"
TOKEN = "a.b.c"
JOB_ID = "0123456789abcdef0123456789abcdef"
HOST = "http://gateway.test"


def settings(**overrides):
    return GatewaySettings.load(dict(config_defaults(), **overrides))


def gateway(**deps):
    """A worker whose auth accepts TOKEN as OWNER's."""
    deps.setdefault("settings", settings())
    worker = worker_factory(GatewayService, **deps)
    if "auth" not in deps:
        worker.auth.validate_token.return_value = {"email": OWNER}
    if "health" not in deps:  # HealthCache without the cache: every call checks
        worker.health.get.side_effect = lambda check: check()
    return worker


def request(method="GET", path="/", body=b"", headers=None, token=TOKEN, cookie=None, **kwargs):
    headers = dict(headers or {})
    if token:
        headers.setdefault("Authorization", "Bearer " + token)
    builder = EnvironBuilder(method=method, path=path, base_url=HOST, headers=headers,
                             input_stream=io.BytesIO(body) if body else None, **kwargs)
    if body or "Content-Length" in headers:
        builder.content_length = len(body)
    if cookie:
        builder.headers["Cookie"] = "mp3svc_token=" + cookie
    return Request(builder.get_environ())


def job(status=c.QUEUED, owner=OWNER, **fields):
    return Job(id=JOB_ID, owner=owner, filename="clip.mp4", status=status, **fields)
