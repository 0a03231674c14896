"""The gateway's HTTP API over httpx: one method per call; every failure is a CliError whose text is
the sentence to show (the API's own "message", plus what to do about it)."""
import email.utils
import json
import time
from urllib.parse import quote, urljoin

import httpx

from mp3svc_client import __version__

TIMEOUT = httpx.Timeout(60.0, connect=10.0)  # the gateway drops clients silent for CLIENT_TIMEOUT (60 s)
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
TRANSIENT = (500, 502, 503, 504)


class CliError(Exception):
    """Stops a command; str() is the sentence for the person."""


class ConnectionFailed(CliError):
    pass


class NotLoggedIn(CliError):
    pass


class ApiError(CliError):
    """An error answer: HTTP status, the API's snake_case code and its sentence, Retry-After seconds."""

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def __str__(self):
        return explain(self)


def explain(err):
    """The API's sentence plus what the person can do about it."""
    message = err.message.rstrip()
    if message and message[-1] not in ".!?":
        message += "."
    if err.status == 401 and err.code != "invalid_credentials":
        return message + " Log in again: mp3svc login EMAIL (or set MP3SVC_TOKEN)."
    if err.code == "insufficient_scope":
        return message + (" MP3SVC_TOKEN holds an API token: make one with the scope this needs "
                          "(mp3svc token create), or unset it to use your login.")
    if err.code == "quota_exceeded":
        return message + " Delete jobs you no longer need (mp3svc jobs, mp3svc rm JOB_ID) to make room."
    if err.status == 429 and err.retry_after is not None:
        return message + " Try again in %d s." % err.retry_after
    if err.status in TRANSIENT:
        return message + " (HTTP %d: the service is unavailable; try again shortly.)" % err.status
    return message


def retry_after(value):
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return int(value)
    try:
        return max(0, int(email.utils.parsedate_to_datetime(value).timestamp() - time.time() + 0.999))
    except (TypeError, ValueError):
        return None


def error_from(status, body, headers, reason=""):
    """ApiError from an error answer; a body that is not the API's JSON (a proxy's page) still reads well."""
    try:
        data = json.loads(body or b"")
        code, message = str(data["error"]), str(data["message"])
    except (ValueError, TypeError, KeyError):
        code = {401: "unauthorized", 404: "not_found", 410: "gone", 413: "too_large"}.get(status)
        code = code or "http_%d" % status
        message = "The server answered HTTP %d%s" % (status, (" " + reason) if reason else "")
    return ApiError(status, code, message, retry_after(headers.get("retry-after")))


class Api:
    def __init__(self, server, token=None, transport=None):
        self.server = server.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.server, timeout=TIMEOUT, transport=transport,
                                  headers={"User-Agent": "mp3svc/%s" % __version__})

    def close(self):
        self._http.close()

    def auth_headers(self):
        if not self.token:
            raise NotLoggedIn("Not logged in: run mp3svc login EMAIL first (or set MP3SVC_TOKEN).")
        return {"Authorization": "Bearer " + self.token}

    def send(self, method, url, token=True, stream=False, auth=None, **kwargs):
        """One request; token=False for the calls made before logging in."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token:
            headers.update(self.auth_headers())
        request = self._http.build_request(method, url, headers=headers, **kwargs)
        try:
            response = self._http.send(request, stream=stream, auth=auth)
        except httpx.ConnectError as exc:
            raise ConnectionFailed("Cannot reach the server at %s (%s). Is it running? MP3SVC_SERVER sets "
                                   "its address." % (self.server, _reason(exc)))
        except httpx.TimeoutException:
            raise ConnectionFailed("The server at %s did not answer in time; try again." % self.server)
        except httpx.HTTPError as exc:
            raise ConnectionFailed("Talking to the server at %s failed: %s." % (self.server, _reason(exc)))
        if response.status_code >= 400:
            body = response.read()
            response.close()
            raise error_from(response.status_code, body, response.headers, response.reason_phrase)
        return response

    # --- accounts --------------------------------------------------------------------------------
    def register(self, email, password):
        return self.send("POST", "/register", token=False, json={"email": email, "password": password}).json()

    def login(self, email, password):
        return self.send("POST", "/login", token=False, auth=(email, password)).json()

    def verify(self, token):
        return self.send("POST", "/verify", token=False, json={"token": token}).json()

    def resend(self, email):
        return self.send("POST", "/verify/resend", token=False, json={"email": email}).json()

    def forgot(self, email):
        return self.send("POST", "/password/forgot", token=False, json={"email": email}).json()

    def reset(self, token, password):
        self.send("POST", "/password/reset", token=False, json={"token": token, "password": password})

    def logout(self):
        """The saved token stops working on the server at once."""
        self.send("POST", "/logout")

    # --- API tokens (with a login token only) ---------------------------------------------------
    def create_token(self, name, scopes, expires_in_days=None):
        """The new token, its secret in "token" (the server shows it this once)."""
        body = {"name": name, "scopes": list(scopes)}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self.send("POST", "/tokens", json=body).json()

    def tokens(self):
        return self.send("GET", "/tokens").json()["tokens"]

    def revoke_token(self, token_id):
        self.send("DELETE", "/tokens/" + quote(token_id, safe=""))

    # --- jobs ------------------------------------------------------------------------------------
    def jobs(self):
        return self.send("GET", "/jobs").json()["jobs"]

    def job(self, job_id):
        return self.send("GET", "/jobs/" + job_id).json()

    def delete(self, job_id):
        self.send("DELETE", "/jobs/" + job_id)

    def download(self, fid):
        """The streamed response with the MP3 whose id is fid; the caller closes it."""
        return self.send("GET", "/download", params={"fid": fid}, stream=True)

    def archive(self, job_ids):
        """The streamed response with a ZIP of these finished jobs' MP3s; the caller closes it."""
        return self.send("POST", "/jobs/archive", json={"job_ids": list(job_ids)}, stream=True)

    # --- tus -------------------------------------------------------------------------------------
    @property
    def uploads_url(self):
        return self.server + "/uploads"

    def create_upload(self, headers):
        """POST /uploads with tus creation headers -> the absolute upload URL."""
        response = self.send("POST", self.uploads_url, headers=dict(TUS_HEADERS, **headers))
        location = response.headers.get("location")
        if not location:
            raise ApiError(response.status_code, "no_location",
                           "The server created no upload (no Location header); is %s an mp3svc gateway?"
                           % self.server)
        return urljoin(self.uploads_url, location)

    def upload_offset(self, url):
        """HEAD of an upload -> bytes the server holds (ApiError 404/410 when it is gone)."""
        response = self.send("HEAD", url, headers=TUS_HEADERS)
        try:
            return int(response.headers["upload-offset"])
        except (KeyError, ValueError):
            raise ApiError(response.status_code, "bad_offset",
                           "The server's answer had no valid Upload-Offset.")


def _reason(exc):
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text
