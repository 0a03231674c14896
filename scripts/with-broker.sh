#!/usr/bin/env bash
# Runs a command with a broker (and its management API) answering at AMQP_URI: the one already
# there, or a local RabbitMQ started here for the command's duration (see devtools/run.py).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p var/log
log=var/log/broker-for-command.log
.venv/bin/python -m devtools.run --only broker > "$log" 2>&1 &
broker=$!
trap 'kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null' EXIT
for _ in $(seq 1 600); do
    grep -q "broker ready" "$log" 2>/dev/null && break
    if ! kill -0 $broker 2>/dev/null; then cat "$log"; exit 1; fi
    sleep 0.2
done
grep -q "broker ready" "$log" || { cat "$log"; exit 1; }
"$@"
