#!/bin/sh
# Runs the service named by $SERVICE; with arguments, runs them instead
# (for example: nameko shell --config config/auth.yaml).
# Secrets come as files (Kubernetes secret volumes, compose secrets): every file directly in
# $SECRETS_DIR (default /run/secrets/mp3svc) whose name is a variable name, say AMQP_URI_AUTH,
# is exported as that variable before the service starts.
set -eu

SECRETS_DIR=${SECRETS_DIR:-/run/secrets/mp3svc}
if [ -d "$SECRETS_DIR" ]; then
    for file in "$SECRETS_DIR"/*; do
        [ -f "$file" ] || continue
        name=$(basename "$file")
        case "$name" in
            ''|[0-9]*|*[!A-Z0-9_]*) continue ;;
        esac
        value=$(cat "$file")
        export "$name=$value"
    done
fi

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
