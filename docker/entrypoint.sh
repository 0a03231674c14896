#!/bin/sh
# Runs the service named by $SERVICE; with arguments, runs them instead
# (for example: nameko shell --config config/auth.yaml).
set -eu

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

case "${SERVICE:-}" in
    gateway|auth|converter|notification) ;;
    *)
        echo "mp3svc-entrypoint: SERVICE must be gateway, auth, converter or notification (got '${SERVICE:-}')" >&2
        exit 64
        ;;
esac

exec nameko run --config "config/${SERVICE}.yaml" "services.${SERVICE}.service"
