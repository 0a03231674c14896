"""notification's Prometheus metrics (served by services.common.metrics.MetricsServer)."""
from prometheus_client import Counter

SENT, FAILED, GAVE_UP = "sent", "failed", "gave_up"
EMAILS = Counter("mp3svc_emails", "Outcome emails: sent, failed (retried later) or gave_up "
                 "(NOTIFY_MAX_ATTEMPTS failures).", ["result"])
for _result in (SENT, FAILED, GAVE_UP):
    EMAILS.labels(_result)

DELIVERED, TIMEOUT = "delivered", "timeout"
WEBHOOK_DELIVERIES = Counter(
    "mp3svc_webhook_deliveries", "Webhook delivery attempts: delivered (a 2xx), failed (another "
    "answer, a redirect, a refused address, a connection error), timeout (no answer in "
    "WEBHOOK_TIMEOUT); both retried. gave_up counts deliveries given up after WEBHOOK_RETRY_HOURS.",
    ["result"])
for _result in (DELIVERED, FAILED, TIMEOUT, GAVE_UP):
    WEBHOOK_DELIVERIES.labels(_result)
