"""The gateway's one static-file server, for the web page (services/gateway/web/) and the API's page
for a person (services/gateway/apidocs/, Swagger UI). Files are read when asked for, never at import.
"""
import mimetypes
import os

from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.utils import send_file

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIR = os.path.join(HERE, "web")
DOCS_DIR = os.path.join(HERE, "apidocs")
DOCS_PAGE = "index.html"


class StaticFiles:
    """Files below `root` (looked up in each of `folders` in turn), sent with an ETag and
    Last-Modified (304 on a match), revalidated on every use (`no-cache`), with `headers`; `html`:
    extra headers for HTML pages; `default_type`: the media type of a name that tells none. A name
    outside them is 404 `not_found`."""

    def __init__(self, root, headers, html=None, folders=("",), default_type="application/octet-stream"):
        self.root = root
        self.default_type = default_type
        self.headers = headers
        self.html = html or {}
        self.folders = folders

    def serve(self, request, name):
        for folder in self.folders:
            path = safe_join(os.path.join(self.root, folder), name)  # None outside the folder
            if path is not None and os.path.isfile(path):
                response = send_file(path, request.environ, mimetype=self.media_type(name))
                response.headers.update(self.headers)
                if response.mimetype == "text/html":
                    response.headers.update(self.html)
                response.cache_control.no_cache = True  # upgrades show at once
                return response
        raise NotFound("No such file.")

    def names(self):
        """The names of the files served, relative to their folder."""
        found = set()
        for folder in self.folders:
            top = os.path.join(self.root, folder)
            for where, _, files in os.walk(top):
                if folder == "" and len(self.folders) > 1 and where != top:
                    continue  # a nested folder of the root is another entry of `folders`
                found.update(os.path.relpath(os.path.join(where, name), top) for name in files)
        return found

    def media_type(self, name):
        return mimetypes.guess_type(name)[0] or self.default_type

    def media_types(self):
        """The media types of the files served (for the OpenAPI document)."""
        return tuple(sorted({self.media_type(name) for name in self.names()}))


# Sent with the page and its files: nothing but the gateway's own origin may be loaded or called.
WEB = StaticFiles(WEB_DIR, {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
})
# Swagger UI's files are one flat set of names (/docs/<name>): its page and set-up, its vendored build
DOCS = StaticFiles(DOCS_DIR, {"X-Content-Type-Options": "nosniff"}, folders=("", "vendor"),
                   default_type="text/plain", html={
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")})
