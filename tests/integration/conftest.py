import pytest
import requests

from services.auth.service import AuthService
from services.converter.service import ConverterService
from services.gateway.service import GatewayService
from services.notification.service import NotificationService
from tests.helpers import wait_until

ALL_SERVICES = (GatewayService, AuthService, ConverterService, NotificationService)


class Api:
    """A real HTTP client for the gateway."""

    def __init__(self, base):
        self.base = base
        self.http = requests.Session()

    def url(self, path):
        return self.base + path

    def register(self, email, password):
        return self.http.post(self.url("/register"), json={"email": email, "password": password})

    def login(self, email, password):
        return self.http.post(self.url("/login"), auth=(email, password))

    def token_for(self, email, password="correct horse battery"):
        self.register(email, password)
        response = self.login(email, password)
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def upload(self, token, path, filename=None, field="file"):
        with open(path, "rb") as handle:
            return self.http.post(self.url("/upload"), headers=bearer(token),
                                  files={field: (filename or path.rsplit("/", 1)[-1], handle)})

    def job(self, token, job_id):
        return self.http.get(self.url("/jobs/%s" % job_id), headers=bearer(token))

    def wait_job(self, token, job_id, timeout=60):
        def finished():
            body = self.job(token, job_id).json()
            return body if body["status"] in ("done", "failed") else None
        return wait_until(finished, timeout, interval=0.2, message="job %s to finish" % job_id)

    def download(self, token, fid, headers=None):
        return self.http.get(self.url("/download"), params={"fid": fid},
                             headers=dict(bearer(token), **(headers or {})))


def bearer(token):
    return {"Authorization": "Bearer %s" % token} if token else {}


@pytest.fixture
def stack(runner_factory, service_config, mail_sink, tmp_path):
    """All four services on an isolated vhost, a fresh database, a real SMTP sink."""
    service_config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=mail_sink.port)
    service_config["PUBLIC_URL"] = "http://" + service_config["WEB_SERVER_ADDRESS"]
    runner = runner_factory(service_config, *ALL_SERVICES)
    runner.start()
    api = Api("http://" + service_config["WEB_SERVER_ADDRESS"])
    wait_until(lambda: api.http.get(api.url("/healthz")).status_code == 200, 30,
               message="gateway healthy")
    api.mail = mail_sink
    api.config = service_config
    api.runner = runner
    yield api
    api.http.close()
