"""entrypoints.py's routing: the gateway's own path converters."""
import pytest
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import Map, Rule

from services.gateway.entrypoints import CONVERTERS
from services.gateway.openapi.builder import http_entrypoints
from services.gateway.service import GatewayService


@pytest.fixture(scope="module")
def routes():
    rules = [Rule(url, methods=[method], endpoint=name)
             for name, method, url in http_entrypoints(GatewayService)]
    return Map(rules, converters=CONVERTERS).bind("gateway.test")


def test_jobs_archive_is_not_a_job_id(routes):
    assert routes.match("/jobs/archive", "POST") == ("archive", {})
    with pytest.raises(MethodNotAllowed) as refused:
        routes.match("/jobs/archive", "GET")
    assert refused.value.valid_methods == ["POST"]  # not /jobs/<job_id>'s GET and DELETE


@pytest.mark.parametrize("segment", ["0123456789abcdef0123456789abcdef", "not-a-job", "archived", "ARCHIVE"])
def test_any_other_segment_reaches_the_job_routes(routes, segment):
    assert routes.match("/jobs/" + segment, "GET") == ("get_job", {"job_id": segment})
    assert routes.match("/jobs/" + segment, "DELETE") == ("delete_job", {"job_id": segment})
