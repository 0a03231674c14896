"""The gateway's static files: the web page (services/gateway/web/)."""
import os

from werkzeug.utils import send_from_directory

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")

# Sent with the page and its files: nothing but the gateway's own origin may be loaded or called.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def web_file(request, path):
    response = send_from_directory(WEB_DIR, path, request.environ)  # safe join; 404 outside WEB_DIR
    response.headers.update(SECURITY_HEADERS)
    response.cache_control.no_cache = True  # revalidate (ETag, Last-Modified): upgrades show at once
    return response
