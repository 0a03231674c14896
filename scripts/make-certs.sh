#!/usr/bin/env bash
# A local certificate authority and server certificates signed by it (openssl), for TLS between
# the services and their broker and database where cert-manager is not there (compose, tests).
# Usage: scripts/make-certs.sh DIR HOST [HOST...]
#   DIR/ca.pem, DIR/ca.key: the CA (made once; kept when present)
#   DIR/<HOST>.pem, DIR/<HOST>.key, DIR/<HOST>-bundle.pem (key + certificate, for mongod):
#   a server certificate for HOST (subjectAltName: HOST, localhost, 127.0.0.1), valid DAYS days.
# Keys are mode 0600; KEY_MODE=0644 for bind mounts into containers whose server runs as another
# user (compose: keep the folder itself closed, scripts/compose-secrets.sh makes it 0700).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0" >&2; exit 64; }
dir=$1; shift
DAYS=${DAYS:-825}
mkdir -p "$dir"
umask 077
key_mode=${KEY_MODE:-600}

if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
    openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days "$((DAYS + 365))" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" -subj "/CN=mp3svc local CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
fi
chmod 644 "$dir/ca.pem"

for host in "$@"; do
    case "$host" in *[!A-Za-z0-9.-]*|"") echo "make-certs: bad host name '$host'" >&2; exit 64 ;; esac
    ext=$(mktemp)
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1" > "$ext"
    openssl req -newkey rsa:2048 -sha256 -nodes -keyout "$dir/$host.key" -out "$dir/$host.csr" \
        -subj "/CN=$host" 2>/dev/null
    openssl x509 -req -in "$dir/$host.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days "$DAYS" -sha256 -extfile "$ext" -out "$dir/$host.pem" 2>/dev/null
    rm -f "$ext" "$dir/$host.csr"
    cat "$dir/$host.key" "$dir/$host.pem" > "$dir/$host-bundle.pem"
    chmod "$key_mode" "$dir/$host.key" "$dir/$host-bundle.pem"
    chmod 644 "$dir/$host.pem"
    echo "make-certs: $dir/$host.pem (signed by $dir/ca.pem)"
done
