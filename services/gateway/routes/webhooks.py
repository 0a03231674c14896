"""A user's webhooks: POST and GET /webhooks, DELETE /webhooks/<id>, GET /webhooks/<id>/deliveries.
The notification service owns them (it posts the deliveries); these routes call it over RPC."""
from werkzeug.wrappers import Response

from services.common.scopes import WEBHOOKS
from services.gateway import schemas
from services.gateway.entrypoints import http, json_body, json_response
from services.gateway.exceptions import InvalidId


class WebhookRoutes:
    """Mixin of GatewayService: uses its `notification` (RPC with a deadline) and `_user`."""

    @http("POST", "/webhooks")
    def create_webhook(self, request):
        owner = self._user(request, WEBHOOKS)
        body = schemas.parse(schemas.WebhookBody, json_body(request))
        return json_response(self.notification.create_webhook(owner, body.url, body.events), 201)

    @http("GET", "/webhooks")
    def list_webhooks(self, request):
        return json_response({"webhooks": self.notification.list_webhooks(
            self._user(request, WEBHOOKS))})

    @http("DELETE", "/webhooks/<string:webhook_id>")
    def delete_webhook(self, request, webhook_id):
        owner = self._user(request, WEBHOOKS)
        self.notification.delete_webhook(owner, self._webhook_id(webhook_id))
        return Response(status=204)

    @http("GET", "/webhooks/<string:webhook_id>/deliveries")
    def webhook_deliveries(self, request, webhook_id):
        owner = self._user(request, WEBHOOKS)
        return json_response({"deliveries": self.notification.list_deliveries(
            owner, self._webhook_id(webhook_id))})

    @staticmethod
    def _webhook_id(webhook_id):
        if not schemas.is_job_id(webhook_id):  # the same shape: 32 hexadecimal characters
            raise InvalidId("A webhook id is 32 hexadecimal characters.")
        return webhook_id
