"""GET /healthz: whether MongoDB, the broker and auth answer (GET /livez is answered by the WSGI app
itself, without a worker: services/gateway/entrypoints.py)."""
from services.gateway.entrypoints import http, json_response


class HealthRoutes:
    """Mixin of GatewayService: uses its `store`, `broker` and `auth` dependencies."""

    @http("GET", "/healthz")
    def healthz(self, request):
        failing = {}
        for part, check in (("mongodb", self.store.ping), ("broker", self.broker.check),
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
