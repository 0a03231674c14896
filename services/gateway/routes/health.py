"""GET /healthz: whether MongoDB, the broker and auth answer, checked at most once a second
(services.gateway.dependencies.HealthCache) (GET /livez is answered by the WSGI app
itself, without a worker: services/gateway/entrypoints.py)."""
from services.gateway.entrypoints import http, json_response


class HealthRoutes:
    """Mixin of GatewayService: uses its `store`, `broker`, `auth` and `health` dependencies."""

    @http("GET", "/healthz")
    def healthz(self, request):
        body, status = self.health.get(self._check_parts)  # at most one check a second
        return json_response(body, status)

    def _check_parts(self):
        failing = {}
        for part, check in (("mongodb", self.store.ping), ("broker", self.broker.check),
                            ("auth", self.auth.ping)):
            try:
                check()
            except Exception as exc:  # report every failing part, not just the first
                failing[part] = str(exc) or type(exc).__name__
        if failing:
            return {"status": "unavailable", "failing": sorted(failing), "error": "unavailable",
                    "message": "Not ready: %s." % ", ".join(sorted(failing))}, 503
        return {"status": "ok"}, 200
