"""gateway: the HTTP API (login, upload, job status, download, webhooks) and ops RPC on jobs.

The entrypoints live in mixins grouped by resource (routes/*.py, operations.py); this class only
composes them with the dependencies they share.
"""
from services.common import constants as c
from services.common.heartbeat import Heartbeat
from services.common.logs import LogContext
from services.common.messaging import EventDispatcher
from services.common.metrics import MetricsServer
# (the mixins' modules, not their classes: `nameko run` takes every class with entrypoints it finds
# in this module for a service, and a mixin is not one)
from services.gateway import caller, metrics, operations
from services.gateway.dependencies import AuthRpc, BrokerCheck, HealthCache, NotificationRpc
from services.gateway.intake import Intake
from services.gateway.ratelimit import RateLimits
from services.gateway.routes import (
    account, accounts, health, jobs, pages, resumable, sessions, tokens, uploads, webhooks)
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore


class GatewayService(caller.Caller, health.HealthRoutes, accounts.AccountRoutes,
                     account.OwnAccountRoutes, sessions.SessionRoutes, tokens.TokenRoutes,
                     jobs.JobRoutes, uploads.UploadRoutes, resumable.ResumableRoutes,
                     webhooks.WebhookRoutes, pages.PageRoutes, operations.Operations):
    name = c.GATEWAY

    settings = GatewaySettings()
    heartbeat = Heartbeat()
    metrics_server = MetricsServer(GatewaySettings)
    store_metrics = metrics.StoreMetrics()
    log_context = LogContext()
    auth = AuthRpc()
    notification = NotificationRpc()
    store = GatewayStore()
    broker = BrokerCheck()
    health = HealthCache()
    dispatch = EventDispatcher()
    limits = RateLimits()

    def _intake(self):
        """The upload use case (POST /upload, tus) over this worker's dependencies."""
        return Intake(self.store, self.settings, self.dispatch)
