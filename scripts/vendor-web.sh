#!/usr/bin/env bash
# Refreshes the web page's vendored npm builds under services/gateway/web/vendor/ (committed: the
# page needs no build step and no network but the gateway's). Change a version here, run this, commit.
set -euo pipefail
cd "$(dirname "$0")/.."
TUS_JS_CLIENT=4.3.1
VENDOR=services/gateway/web/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "tus-js-client@$TUS_JS_CLIENT" >/dev/null && tar xzf "tus-js-client-$TUS_JS_CLIENT.tgz")
dest=$VENDOR/tus-js-client
rm -rf "$dest"
mkdir -p "$dest"
cp "$work/package/dist/tus.min.js" "$work/package/dist/tus.min.js.map" "$work/package/LICENSE" "$dest/"
echo "tus-js-client $TUS_JS_CLIENT (npm, dist/ browser build)" > "$dest/VERSION"
echo "vendor-web: $dest <- tus-js-client@$TUS_JS_CLIENT"
