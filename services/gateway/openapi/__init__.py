"""The HTTP API described: models.py (responses, parameters), operations.py (one entry per route),
builder.py (the OpenAPI 3.1 document)."""
