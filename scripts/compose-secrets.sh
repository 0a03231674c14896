#!/usr/bin/env bash
# Everything secret that docker/docker-compose.yml needs, made once into docker/secrets/ (git-ignored,
# mode 0700; run again to add what is missing, nothing existing is replaced):
#   - a local CA and TLS certificates for rabbitmq and mongo (scripts/make-certs.sh)
#   - a random password per broker user (the rules of kubernetes/operators/broker-access.yaml) and
#     per MongoDB user, and MongoDB's replica-set key
#   - rabbitmq-definitions.json: those users and rules for the broker (no guest user)
#   - <service>/: the files each service reads at /run/secrets/mp3svc (its AMQP_URI_<SERVICE> and
#     MONGO_URI with its own user, over TLS; tls/ca.crt)
# Usage: scripts/compose-secrets.sh   (then: docker compose -f docker/docker-compose.yml up -d)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=docker/secrets
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

KEY_MODE=644 scripts/make-certs.sh "$dir" rabbitmq mongo >/dev/null
secret() { [ -s "$1" ] || "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$1"; chmod 644 "$1"; }
for user in gateway auth converter notification ops keda; do secret "$dir/amqp-$user-password"; done
for user in gateway converter notification ops root; do secret "$dir/mongo-$user-password"; done
[ -s "$dir/mongo-keyfile" ] || "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(96))' > "$dir/mongo-keyfile"
chmod 644 "$dir/mongo-keyfile"
"$PYTHON" -m devtools.broker_access definitions --passwords-dir "$dir" > "$dir/rabbitmq-definitions.json"
chmod 644 "$dir/rabbitmq-definitions.json"

mongo_options="replicaSet=rs0&authSource=admin&tls=true&tlsCAFile=/run/secrets/mp3svc/tls/ca.crt"
for service in gateway auth converter notification; do
    own="$dir/$service"
    mkdir -p "$own/tls"
    chmod 755 "$own" "$own/tls"
    cp "$dir/ca.pem" "$own/tls/ca.crt"
    upper=$(echo "$service" | tr a-z A-Z)
    printf 'amqps://%s:%s@rabbitmq:5671/' "$service" "$(cat "$dir/amqp-$service-password")" > "$own/AMQP_URI_$upper"
    if [ "$service" != auth ]; then
        printf 'mongodb://%s:%s@mongo:27017/mp3svc?%s' "$service" "$(cat "$dir/mongo-$service-password")" \
            "$mongo_options" > "$own/MONGO_URI"
    fi
    find "$own" -type f -exec chmod 644 {} +
done
echo "compose-secrets: $dir is ready (keep it out of backups you share; it is git-ignored)"
