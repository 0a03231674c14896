"""notification's Prometheus metrics (served by services.common.metrics.MetricsServer)."""
from prometheus_client import Counter

SENT, FAILED, GAVE_UP = "sent", "failed", "gave_up"
EMAILS = Counter("mp3svc_emails", "Outcome emails: sent, failed (retried later) or gave_up "
                 "(NOTIFY_MAX_ATTEMPTS failures).", ["result"])
for _result in (SENT, FAILED, GAVE_UP):
    EMAILS.labels(_result)
