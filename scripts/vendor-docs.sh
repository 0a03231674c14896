#!/usr/bin/env bash
# Refreshes the Swagger UI files that GET /docs serves (services/gateway/apidocs/vendor/) from npm's
# swagger-ui-dist package, with its licence files: the gateway serves them itself, no CDN.
#   scripts/vendor-docs.sh            the pinned version below
#   scripts/vendor-docs.sh 5.36.0     another version (then update SWAGGER_UI_VERSION here)
set -euo pipefail
cd "$(dirname "$0")/.."
SWAGGER_UI_VERSION=${1:-5.35.0}
DEST=services/gateway/apidocs/vendor
FILES=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null && tar xzf ./*.tgz)
rm -rf "$DEST"
mkdir -p "$DEST"
for name in "${FILES[@]}"; do
    cp "$work/package/$name" "$DEST/$name"
done
# the bundle names its source map; the map is not vendored, so the reference goes
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST/swagger-ui-bundle.js"
sed -i '/sourceMappingURL=/d' "$DEST/swagger-ui.css"
echo "swagger-ui-dist $SWAGGER_UI_VERSION" > "$DEST/VERSION"
echo "vendored swagger-ui-dist $SWAGGER_UI_VERSION into $DEST"
