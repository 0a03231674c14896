"""Errors notification raises over RPC (the webhooks' methods). Registered for deserialization so
the gateway gets these classes back (its one error table, services/gateway/exceptions.py, maps
them)."""
from nameko.exceptions import deserialize_to_instance


@deserialize_to_instance
class InvalidUrl(Exception):
    """Not an http(s) URL, or it reaches an address that is not public (WEBHOOK_ALLOW_PRIVATE)."""


@deserialize_to_instance
class InvalidWebhook(Exception):
    """Unknown events, or more webhooks than an account may have."""


@deserialize_to_instance
class UnknownWebhook(Exception):
    """No such webhook among the caller's."""
