#!/usr/bin/env bash
# `make test`: pytest against a broker with its management API (started when none answers).
# The tests start their own MongoDB wire server (unless MONGO_URI is set) and SMTP servers.
set -uo pipefail
cd "$(dirname "$0")/.."
AMQP=${AMQP_URI:-pyamqp://guest:guest@127.0.0.1:5672/}
API=${RABBIT_API_URI:-http://guest:guest@127.0.0.1:15672}
exec scripts/with-broker.sh .venv/bin/python -m pytest --amqp-uri "$AMQP" --rabbit-api-uri "$API" "$@"
