"""Every error the gateway can answer with, and the one table mapping exceptions to (status, code)."""
from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError
from nameko.exceptions import UnknownService
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException

from services.auth.exceptions import Busy as AuthBusy
from services.common.options import InvalidOption
from services.auth.exceptions import (
    EmailUnverified, InvalidCredentials, InvalidInput, InvalidLink, InvalidToken, RegistrationClosed,
    TooManyApiTokens, TooManyAttempts, UnknownApiToken, UserExists, WeakPassword, WrongPassword)
from services.gateway import tus
from services.notification.exceptions import InvalidUrl, InvalidWebhook, UnknownWebhook


class GatewayError(Exception):
    """Base for errors raised by the gateway itself; args[0] is the sentence for a person."""


class BadRequest(GatewayError):
    pass


class NoFile(GatewayError):
    pass


class EmptyFile(GatewayError):
    pass


class TooManyFiles(GatewayError):
    pass


class TooLarge(GatewayError):
    pass


class UploadExpired(GatewayError):
    pass


class UploadTooSlow(GatewayError):
    """An upload's body arrived slower than UPLOAD_MIN_RATE on average (services/gateway/deadline.py)."""


class RequestTimedOut(GatewayError):
    """A request (not an upload) did not arrive within REQUEST_TIMEOUT."""


class UnsupportedMediaType(GatewayError):
    pass


class UploadFinished(GatewayError):
    """A resumable upload that is complete already (it is a job now) cannot be terminated."""


class InvalidId(GatewayError):
    pass


class NotFound(GatewayError):
    pass


class NotReady(GatewayError):
    pass


class Unauthorized(GatewayError):
    pass


class AuthUnavailable(GatewayError):
    pass


class NotificationUnavailable(GatewayError):
    pass


class BrokerUnavailable(GatewayError):
    pass


class StorageUnavailable(GatewayError):
    pass


class Throttled(GatewayError):
    """Try again later: args are (sentence, seconds for Retry-After)."""

    @property
    def retry_after(self):
        return self.args[1]


class RateLimited(Throttled):
    pass


class Busy(Throttled):
    pass


class CsrfRejected(GatewayError):
    """A cookie-authenticated state-changing request from a page that is not ours."""


class InsufficientScope(GatewayError):
    """An API token used outside its scopes (services/common/scopes.py)."""


class QuotaExceeded(GatewayError):
    pass


class StorageFull(GatewayError):
    """The whole store is at STORAGE_LIMIT_BYTES."""


class TooManyJobs(GatewayError):
    """args: (message, retry_after_seconds)"""

    @property
    def retry_after(self):
        return int(self.args[1]) if len(self.args) > 1 else 30


# exception -> (HTTP status, error code); the first matching class wins, so subclasses go first.
ERRORS = [
    (WeakPassword, 400, "weak_password"),
    (InvalidInput, 400, "invalid_input"),
    (InvalidLink, 400, "invalid_token"),
    (BadRequest, 400, "bad_request"),
    (NoFile, 400, "no_file"),
    (EmptyFile, 400, "empty_file"),
    (TooManyFiles, 400, "too_many_files"),
    (InvalidId, 400, "invalid_id"),
    (InvalidOption, 400, "invalid_option"),
    (InvalidUrl, 400, "invalid_url"),
    (InvalidWebhook, 400, "invalid_input"),
    (InvalidCredentials, 401, "invalid_credentials"),
    (InvalidToken, 401, "invalid_token"),
    (Unauthorized, 401, "unauthorized"),
    (RegistrationClosed, 403, "registration_closed"),
    (EmailUnverified, 403, "email_unverified"),
    (WrongPassword, 403, "wrong_password"),
    (CsrfRejected, 403, "csrf"),
    (InsufficientScope, 403, "insufficient_scope"),
    (QuotaExceeded, 403, "quota_exceeded"),
    (NotFound, 404, "not_found"),
    (UnknownApiToken, 404, "not_found"),
    (UnknownWebhook, 404, "not_found"),
    (UserExists, 409, "user_exists"),
    (NotReady, 409, "not_ready"),
    (TooManyApiTokens, 409, "too_many_tokens"),
    (UploadExpired, 408, "upload_timeout"),
    (UploadTooSlow, 408, "upload_timeout"),
    (RequestTimedOut, 408, "request_timeout"),
    # resumable uploads (tus)
    (tus.InvalidHeader, 400, "invalid_header"),
    (tus.UnsupportedVersion, 412, "unsupported_version"),
    (tus.WrongContentType, 415, "unsupported_media_type"),
    (tus.OffsetMismatch, 409, "offset_mismatch"),
    (tus.TooLarge, 413, "too_large"),
    (UploadFinished, 409, "upload_finished"),
    (TooLarge, 413, "too_large"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (TooManyAttempts, 429, "too_many_attempts"),
    (RateLimited, 429, "rate_limited"),
    (TooManyJobs, 429, "too_many_jobs"),
    (Busy, 503, "busy"),
    (AuthBusy, 503, "busy"),
    (AuthUnavailable, 503, "auth_unavailable"),
    (UnknownService, 503, "auth_unavailable"),
    (NotificationUnavailable, 503, "notification_unavailable"),
    (BrokerUnavailable, 503, "broker_unavailable"),
    (KombuError, 503, "broker_unavailable"),
    (AMQPError, 503, "broker_unavailable"),
    (ConnectionError, 503, "broker_unavailable"),
    (StorageUnavailable, 503, "storage_unavailable"),
    (StorageFull, 507, "storage_full"),
    (PyMongoError, 503, "storage_unavailable"),
]

MESSAGES = {
    "auth_unavailable": "The authentication service is not answering; try again shortly.",
    "notification_unavailable": "The notification service is not answering; try again shortly.",
    "broker_unavailable": "The message broker is not reachable; try again shortly.",
    "storage_unavailable": "The file store is not reachable; try again shortly.",
    "busy": "The server is at capacity; try again in a few seconds.",
    "storage_full": "The server's storage is full; try again later, or tell the operator.",
    "internal_error": "Something went wrong on our side; try again, or tell the operator.",
}

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "upload_timeout",
              409: "conflict", 413: "too_large", 415: "unsupported_media_type",
              416: "range_not_satisfiable"}


def describe(exc):
    """(status, code, message, extra headers) for any exception."""
    for exc_type, status, code in ERRORS:
        if isinstance(exc, exc_type):
            headers = {}
            if status == 401:
                headers["WWW-Authenticate"] = (
                    'Basic realm="mp3svc"' if isinstance(exc, InvalidCredentials)
                    else 'Bearer realm="mp3svc"')
            if getattr(exc, "retry_after", None) is not None:
                headers["Retry-After"] = str(exc.retry_after)
            message = MESSAGES.get(code) if status >= 500 else None
            if message is None:
                message = str(exc.args[0]) if exc.args else code.replace("_", " ")
            return status, code, message, headers
    if isinstance(exc, HTTPException):
        code = HTTP_CODES.get(exc.code) or ("bad_request" if exc.code < 500 else "internal_error")
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return exc.code, code, exc.description or exc.name, headers
    return 500, "internal_error", MESSAGES["internal_error"], {}
