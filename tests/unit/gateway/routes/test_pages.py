"""routes/pages.py and static.py on a worker (nameko's worker_factory): the one static-file server."""
import json

import pytest
from werkzeug.exceptions import NotFound

from tests.unit.gateway.worker import gateway, request


def test_the_web_page_with_its_security_headers_and_revalidation():
    worker = gateway()
    page = worker.web_index(request(token=None))
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-cache" in page.headers["Cache-Control"]
    page.direct_passthrough = False
    again = worker.web_index(request(token=None, headers={"If-None-Match": page.headers["ETag"]}))
    assert again.status_code == 304


@pytest.mark.parametrize("name", ["../service.py", "nope.js", "", "../../setup.cfg"])
def test_nothing_outside_the_served_files(name):
    worker = gateway()
    with pytest.raises(NotFound):
        worker.web_static(request(token=None), name)
    with pytest.raises(NotFound):
        worker.docs_asset(request(token=None), name)


def test_the_docs_page_and_its_assets():
    worker = gateway()
    page = worker.docs(request(token=None))
    assert page.mimetype == "text/html" and "script-src 'self'" in page.headers["Content-Security-Policy"]
    license_ = worker.docs_asset(request(token=None), "LICENSE")  # in apidocs/vendor/
    assert license_.status_code == 200 and license_.mimetype == "text/plain"
    assert "Content-Security-Policy" not in license_.headers


def test_the_openapi_document():
    document = json.loads(gateway().openapi(request(token=None)).get_data())
    assert document["openapi"] == "3.1.0" and "/upload" in document["paths"]
