#!/usr/bin/env bash
# `make test`: a broker with its management API (started here when none answers), then pytest.
# The tests start their own MongoDB wire server (unless MONGO_URI is set) and SMTP servers.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p var/log
ready=var/broker.ready
rm -f "$ready"
.venv/bin/python -m services.devrun --only broker > var/log/test-broker.log 2>&1 &
broker=$!
trap 'kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null' EXIT
for _ in $(seq 1 600); do
    grep -q "broker ready" var/log/test-broker.log 2>/dev/null && break
    if ! kill -0 $broker 2>/dev/null; then cat var/log/test-broker.log; exit 1; fi
    sleep 0.2
done
grep -q "broker ready" var/log/test-broker.log || { cat var/log/test-broker.log; exit 1; }

AMQP=${AMQP_URI:-pyamqp://guest:guest@127.0.0.1:5672/}
API=${RABBIT_API_URI:-http://guest:guest@127.0.0.1:15672}
.venv/bin/python -m pytest --amqp-uri "$AMQP" --rabbit-api-uri "$API" "$@"
