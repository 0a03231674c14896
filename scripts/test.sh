#!/usr/bin/env bash
# `make test`: pytest against a broker with its management API (started when none answers).
# The tests start their own MongoDB wire server (unless MONGO_URI is set) and SMTP servers.
# Two passes over the same arguments (paths, -k, -m, ...): the tests not marked `serial` on
# TEST_WORKERS pytest-xdist workers (default 2; 0: in this process), a file per worker at a time, in
# the order collected; then the `serial` ones alone. It fails when either pass fails.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TEST_BROKER_UP:-}" ]; then  # one broker for both passes
    TEST_BROKER_UP=1 exec scripts/with-broker.sh "$0" "$@"
fi
AMQP=${AMQP_URI:-pyamqp://guest:guest@127.0.0.1:5672/}
API=${RABBIT_API_URI:-http://guest:guest@127.0.0.1:15672}
pytest() { .venv/bin/python -m pytest --amqp-uri "$AMQP" --rabbit-api-uri "$API" "$@"; }

started=$SECONDS
pytest -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --serial-tests exclude "$@"
parallel=$?
echo "test.sh: parallel pass exit $parallel in $((SECONDS - started)) s"
# 5: no test selected in this pass (a run of some paths only); 2-4: interrupted, or a usage error
case $parallel in 0|1|5) ;; *) exit $parallel ;; esac
started=$SECONDS
pytest --serial-tests only "$@"
serial=$?
echo "test.sh: serial pass exit $serial in $((SECONDS - started)) s"
if [ $parallel = 5 ] && [ $serial = 5 ]; then exit 5; fi
for code in $parallel $serial; do
    case $code in 0|5) ;; *) exit $code ;; esac
done
