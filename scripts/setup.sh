#!/usr/bin/env bash
# Installs what `make run` and `make test` need and is missing; safe to run again.
#   - ffmpeg (and rabbitmq-server when no broker answers at AMQP_URI) from Debian, when root
#   - .venv with the project and its pinned dependencies (re-installed when setup.cfg changes)
#   - .venv-mongo with the embedded MongoDB wire server nx-27017 (its own venv: it needs a newer
#     pymongo than the services pin)
#   - .venv-checkov with checkov, which scripts/validate-deploy.sh (and so the tests) runs (its own
#     venv: it pins many packages); SKIP_CHECKOV=1 (make run) leaves it out
#   - .venv-openapi with openapi-python-client, with which tests/integration/test_generated_client.py
#     generates a client from the gateway's /openapi.json (its own venv: it pins many packages);
#     SKIP_OPENAPI_CLIENT=1 (make run) leaves it out
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-dev,test}

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing $*; install them (apt-get install $*) or run as root" >&2
        exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

amqp_answers() {
    "$PYTHON" - <<'PY'
import os, socket, sys
from urllib.parse import urlparse
u = urlparse(os.environ.get("AMQP_URI") or "pyamqp://guest:guest@127.0.0.1:5672/")
try:
    socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
[ -x /usr/bin/time ] || missing+=(time)  # make bench measures peak RSS with it
# promtool checks kubernetes/'s alert rules; the metrics test scrapes the services with a real server
{ command -v promtool >/dev/null && [ -x /usr/bin/prometheus ]; } || missing+=(prometheus)
if ! amqp_answers && ! command -v rabbitmq-server >/dev/null && [ ! -x /usr/sbin/rabbitmq-server ]; then
    missing+=(rabbitmq-server)
fi
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian"
    apt_install "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$EXTRAS
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
        || [ client/pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing the project and its command-line client into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e ".[${EXTRAS}]" -e ./client
    touch "$stamp"
fi

if [ ! -x .venv-mongo/bin/nx-27017 ]; then
    echo "setup: installing nx-27017 into .venv-mongo"
    "$PYTHON" -m venv .venv-mongo
    .venv-mongo/bin/pip install -q --disable-pip-version-check nx-27017==0.8.1
fi

if [ -z "${SKIP_CHECKOV:-}" ] && [ ! -x .venv-checkov/bin/checkov ]; then
    echo "setup: installing checkov into .venv-checkov"
    "$PYTHON" -m venv .venv-checkov
    .venv-checkov/bin/pip install -q --disable-pip-version-check checkov==3.3.30
fi

if [ -z "${SKIP_OPENAPI_CLIENT:-}" ] && [ ! -x .venv-openapi/bin/openapi-python-client ]; then
    echo "setup: installing openapi-python-client into .venv-openapi"
    "$PYTHON" -m venv .venv-openapi
    .venv-openapi/bin/pip install -q --disable-pip-version-check openapi-python-client==0.29.1
fi
