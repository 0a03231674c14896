"""Loaded by the schemathesis CLI (SCHEMATHESIS_HOOKS) in test_openapi_fuzz.py: a tus PATCH body
(application/offset+octet-stream) is raw bytes, sent as schemathesis sends application/octet-stream."""
import schemathesis

from services.gateway.tus import OFFSET_CONTENT_TYPE

schemathesis.serializer.alias(OFFSET_CONTENT_TYPE, "application/octet-stream")
