"""gateway: the HTTP API (login, upload, job status, download) and ops RPC on jobs."""
import logging

from nameko.rpc import rpc
from nameko.timer import timer
from pymongo.errors import PyMongoError
from werkzeug.wsgi import wrap_file
from werkzeug.wrappers import Response

from services.auth.exceptions import InvalidInput, UnknownUser
from services.auth.schemas import lookup_email
from services.common import constants as c
from services.common.messaging import EventDispatcher
from services.common.heartbeat import Heartbeat
# (the mixins' modules, not their classes: `nameko run` takes every class with entrypoints it finds
# in this module for a service, and a mixin is not one)
from services.gateway import api, resumable, schemas, web
from services.gateway.dependencies import AuthRpc, BrokerCheck
from services.gateway.entrypoints import http, json_body, json_response
from services.gateway.exceptions import (
    BrokerUnavailable, InvalidId, NotFound, NotReady, Unauthorized, UploadExpired)
from services.gateway.jobs import GatewayStore
from services.gateway.ratelimit import RateLimits
from services.gateway.settings import GatewaySettings
from services.gateway.uploads import UploadReceiver
from services.storage.files import parse_file_id

log = logging.getLogger(__name__)
DOWNLOAD_BLOCK = 1024 * 1024
MAX_LIST = 1000


class GatewayService(web.WebMixin, resumable.ResumableUploads):
    name = c.GATEWAY

    settings = GatewaySettings()
    heartbeat = Heartbeat()
    auth = AuthRpc()
    jobs = GatewayStore()
    broker = BrokerCheck()
    dispatch = EventDispatcher()
    limits = RateLimits()

    # --- health (GET /livez is answered by the WSGI app itself, without a worker) ---------------
    @http("GET", "/healthz")
    def healthz(self, request):
        failing = {}
        for part, check in (("mongodb", self.jobs.ping), ("broker", self.broker.check),
                            ("auth", self.auth.ping)):
            try:
                check()
            except Exception as exc:  # report every failing part, not just the first
                failing[part] = str(exc) or type(exc).__name__
        if failing:
            return json_response({"status": "unavailable", "failing": sorted(failing),
                                  "error": "unavailable",
                                  "message": "Not ready: %s." % ", ".join(sorted(failing))}, 503)
        return json_response({"status": "ok"})

    # --- users --------------------------------------------------------------------------------
    @http("POST", "/register")
    def register(self, request):
        body = json_body(request)
        self.limits.hit("register", request)
        form = api.parse(api.RegisterBody, body)
        user = self.auth.register(form.email, form.password)
        return json_response(user, 201)

    @http("POST", "/login")
    def login(self, request):
        self.limits.hit("login", request)
        credentials = request.authorization
        if credentials is None or credentials.type != "basic":
            raise Unauthorized("Log in with HTTP Basic authentication: email and password.")
        return json_response(self.auth.login(credentials.username, credentials.password))

    # --- jobs ---------------------------------------------------------------------------------
    @http("POST", "/upload", max_body=None)  # bounded while streaming (uploads.py)
    def upload(self, request):
        owner = self._user(request)
        quota = self.settings.USER_QUOTA_BYTES
        # before a byte is stored: the active-job cap, and the quota from Content-Length
        job_id, room = self.jobs.admit(owner, request.content_length, quota,
                                       self.settings.USER_MAX_ACTIVE_JOBS)
        receiver = UploadReceiver(self.settings.MAX_UPLOAD_BYTES, lambda filename: (
            self.jobs.begin_file(job_id, owner, filename, room, quota)))  # quota while streaming
        try:
            _, size = receiver.receive(request)
            options = schemas.options_from(receiver.text_fields(), ignore=())
        except BaseException:
            try:
                receiver.abort()
                self.jobs.discard(job_id)
            except PyMongoError:  # MongoDB is what failed; the upload sweeper cleans up later
                pass
            raise
        job = self.jobs.queue(job_id, size, options)
        if job is None:  # swept as abandoned while it streamed (UPLOAD_TIMEOUT), or deleted
            self.jobs.discard(job_id, video_id=receiver.upload.file_id)
            raise UploadExpired("The upload took longer than the server allows; send it again.")
        try:
            self._dispatch_job(job)
        except Exception as exc:
            self.jobs.discard(job_id)
            raise BrokerUnavailable("Could not queue the job: %s" % exc) from exc
        return json_response({"job_id": job_id, "status": c.QUEUED}, 202)

    @http("GET", "/jobs")
    def list_jobs_http(self, request):
        owner = self._user(request)
        return json_response({"jobs": [self._job_json(j) for j in self.jobs.for_owner(owner)]})

    @http("GET", "/jobs/<string:job_id>")
    def get_job(self, request, job_id):
        return json_response(self._job_json(self._own_job(request, job_id)))

    @http("DELETE", "/jobs/<string:job_id>")
    def delete_job(self, request, job_id):
        """The job, its MP3 and its video; a conversion in progress stops (see GatewayJobs.delete)."""
        job = self._own_job(request, job_id)
        if not self.jobs.delete(job.id, job.owner):
            raise NotFound("No such job.")
        return Response(status=204)

    @http("GET", "/download")
    def download(self, request):
        owner = self._user(request)
        fid = request.args.get("fid", "")
        if schemas.is_job_id(fid):       # a job id works too: 409 until its MP3 exists
            job = self._own_job(request, fid, owner)
            if job.status != c.DONE:
                raise NotReady("The job is %s; the MP3 is not ready." % job.status)
            fid = str(job.mp3_id)
        file_id = parse_file_id(fid)
        if file_id is None:
            raise InvalidId("fid must be the MP3 id from the email (24 hexadecimal characters).")
        stored = self.jobs.open_mp3(file_id)
        if stored is None or stored.metadata.get("owner") != owner:
            raise NotFound("No such MP3.")
        response = Response(wrap_file(request.environ, stored, DOWNLOAD_BLOCK),
                            mimetype="audio/mpeg", direct_passthrough=True)
        response.headers["Content-Disposition"] = schemas.content_disposition(stored.filename)
        response.set_etag(str(file_id))
        response.headers["Cache-Control"] = "private, max-age=0"
        response.headers["Accept-Ranges"] = "bytes"
        response.content_length = stored.length
        return response.make_conditional(request, accept_ranges=True, complete_length=stored.length)

    # --- the API described (services/gateway/api.py) ---------------------------------------------
    @http("GET", "/openapi.json")
    def openapi(self, request):
        return json_response(api.document(type(self)))

    @http("GET", "/docs")
    def docs(self, request):
        return api.docs_file(request, api.DOCS_PAGE)

    @http("GET", "/docs/<string:asset>")
    def docs_asset(self, request, asset):
        return api.docs_file(request, asset)

    # --- ops over RPC (nameko shell); arguments are checked like HTTP input -------------------
    @rpc
    def list_jobs(self, email, limit=100):
        """A user's jobs, newest first (at most `limit`, 1..1000)."""
        email = lookup_email(email)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidInput("limit must be a whole number from 1 to %d." % MAX_LIST)
        return [self._job_json(job) for job in self.jobs.for_owner(email, limit)]

    @rpc
    def requeue_job(self, job_id):
        """Put a failed job back in the queue; returns the job, or None when it is not failed."""
        if not schemas.is_job_id(job_id):
            raise InvalidInput("A job id is 32 hexadecimal characters, as a string.")
        job = self.jobs.requeue(job_id)
        if job is None:
            return None
        self._dispatch_job(job)
        return self._job_json(job)

    @rpc
    def delete_user(self, email):
        """The user's account with every job, video and MP3 of theirs. The account is disabled
        first (no new upload starts), then the files go, then the account."""
        email = lookup_email(email)
        try:
            self.auth.disable_user(email)
        except UnknownUser:
            pass  # the account is gone already: remove what is left of theirs
        removed = self.jobs.delete_owner(email)
        account = self.auth.delete_user(email)
        return dict(removed, email=email, user_deleted=account["deleted"])

    @rpc
    def summary(self):
        """Jobs by status, files and bytes stored, users (from auth)."""
        return dict(self.jobs.summary(), users=self.auth.summary())

    @timer(interval=10)
    def sweep_uploads(self):
        """Remove uploads abandoned mid-stream by a gateway that crashed (UPLOAD_TIMEOUT)."""
        try:
            swept = self.jobs.sweep_uploads(older_than=self.settings.UPLOAD_TIMEOUT)
            if swept:
                log.info("removed %d abandoned upload(s)", swept)
        except Exception:
            log.exception("upload sweep failed")

    @timer(interval=10)
    def sweep_expired(self):
        """Delete finished jobs, their MP3s and videos RETENTION_HOURS after they finished."""
        try:
            expired = self.jobs.expire(self.settings.RETENTION_HOURS)
            if expired:
                log.info("deleted %d expired job(s)", expired)
        except Exception:
            log.exception("retention sweep failed")

    # --- helpers ----------------------------------------------------------------------------
    def _job_json(self, job):
        return schemas.job_to_json(job, self.settings.RETENTION_HOURS)

    def _dispatch_job(self, job):
        self.dispatch(c.VIDEO_UPLOADED, job.event(video_id=str(job.video_id)))

    def _user(self, request):
        """The caller's email, from `Authorization: Bearer` or the web page's cookie (whose
        state-changing requests must come from the page itself: 403 csrf otherwise)."""
        token, _ = web.token_from_request(request)
        if token is None:
            raise Unauthorized("Send the token from /login as 'Authorization: Bearer <token>'.")
        web.check_origin(request, (self.settings.PUBLIC_URL,))
        return self.auth.validate_token(token)["email"]

    def _own_job(self, request, job_id, owner=None):
        owner = owner or self._user(request)
        if not schemas.is_job_id(job_id):
            raise InvalidId("A job id is 32 hexadecimal characters.")
        job = self.jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound("No such job.")
        return job
