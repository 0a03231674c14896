"""Resumable uploads with tuspy: the tus protocol loop, metadata encoding and the URL store are
tuspy's; creation and HEAD go through the Api (its errors and Retry-After), PATCH gets a timeout."""
import hashlib
import json
import os
import time

import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.request import TusRequest
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

from mp3svc_client.api import TRANSIENT, ApiError, CliError, ConnectionFailed, error_from

CHUNK_SIZE = 8 * 1024 * 1024   # one PATCH; well under the 100 MB some proxies allow per request
PATCH_TIMEOUT = (10, 120)      # connect, read (seconds)
RETRY_DELAYS = (1, 2, 4, 8, 16)  # a dropped connection or a 5xx mid-upload: ask the offset, go on


class Interrupted(CliError):
    """Ctrl-C during an upload; the next `convert` of the same file resumes."""


class _Patch(TusRequest):
    def perform(self):
        chunk = self.file.read(self._content_length)
        try:
            response = requests.patch(self._url, data=chunk, headers=self._request_headers,
                                      timeout=PATCH_TIMEOUT, verify=self.verify_tls_cert,
                                      cert=self.client_cert)
        except requests.RequestException as error:
            raise TusUploadFailed(error)
        self.status_code = response.status_code
        self.response_content = response.content
        self.response_headers = {k.lower(): v for k, v in response.headers.items()}


class _Uploader(Uploader):
    def __init__(self, api, key, **kwargs):
        self._api, self._key = api, key  # before super(): it may already ask for the offset
        super().__init__(**kwargs)

    def _get_fingerprint(self):
        return self._key

    def create_url(self):
        return self._api.create_upload(self.get_url_creation_headers())

    def get_offset(self):
        return self._api.upload_offset(self.url)

    def _do_request(self):
        self.request = _Patch(self)
        self.request.perform()
        if not 200 <= self.request.status_code < 300:
            raise TusUploadFailed("", self.request.status_code, self.request.response_content)
        if "upload-offset" not in self.request.response_headers:
            raise ApiError(self.request.status_code, "bad_offset",
                           "The server's answer had no Upload-Offset.")


def resume_key(server, path, metadata):
    """Same server, same file (absolute path, size, modification time) and same options: resume."""
    st = os.stat(path)
    ident = [server, os.path.abspath(path), st.st_size, st.st_mtime_ns, sorted(metadata.items())]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()


class UploadStore:
    """tuspy's FileStorage (a small JSON file) under the user's cache directory."""

    def __init__(self, path):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.storage = FileStorage(str(path))
            self.storage.get_item("")
        except ValueError:  # a file broken by a crash: forget it (uploads restart from zero)
            path.unlink()
            self.storage = FileStorage(str(path))

    def close(self):
        self.storage.close()


def upload(api, store, path, metadata, progress=None):
    """Upload the file at path (resuming when possible); returns the job id. progress(offset, size)."""
    key = resume_key(api.server, path, metadata)
    client = TusClient(api.uploads_url, headers=api.auth_headers())
    with open(path, "rb") as stream:
        kwargs = dict(file_stream=stream, client=client, chunk_size=CHUNK_SIZE, metadata=metadata,
                      store_url=True, url_storage=store.storage)
        try:
            uploader = _Uploader(api, key, **kwargs)
        except ApiError as err:
            if err.status not in (404, 410):  # gone: deleted, expired, another user's
                raise
            store.storage.remove_item(key)
            uploader = _Uploader(api, key, **kwargs)
        size = uploader.get_file_size()
        if uploader.url is None:
            uploader.set_url(uploader.create_url())
        job_id = uploader.url.rstrip("/").rsplit("/", 1)[-1]
        try:
            _send(uploader, size, progress)
            store.storage.remove_item(key)
        except KeyboardInterrupt:
            if uploader.offset < size:
                raise Interrupted("Interrupted after %s of %s of %s; run the same command again to resume."
                                  % (_size(uploader.offset), _size(size), os.path.basename(path)))
            raise Interrupted("Interrupted once %s was uploaded: job %s goes on converting on the server "
                              "(mp3svc download %s)." % (os.path.basename(path), job_id, job_id))
    return job_id


def _send(uploader, size, progress):
    if progress:
        progress(uploader.offset, size)
    failures = 0
    while uploader.offset < size:
        try:
            uploader.upload_chunk()
            failures = 0
        except (TusCommunicationError, ConnectionFailed, ApiError) as err:
            status = getattr(err, "status_code", getattr(err, "status", None))
            if status not in (None, 409) + TRANSIENT or failures == len(RETRY_DELAYS):
                raise _as_cli_error(err, uploader)
            time.sleep(RETRY_DELAYS[failures])
            failures += 1
            try:
                uploader.offset = uploader.get_offset()
            except ConnectionFailed:
                continue
        if progress:
            progress(uploader.offset, size)


def _as_cli_error(err, uploader):
    if isinstance(err, CliError):
        return err
    if err.status_code is None:
        return ConnectionFailed("The upload to %s failed: %s." % (uploader._api.server, err))
    headers = getattr(uploader.request, "response_headers", None) or {}
    return error_from(err.status_code, err.response_content, headers)


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024
