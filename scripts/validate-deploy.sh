#!/usr/bin/env bash
# Offline checks of the deployment files (no Docker engine, no cluster, no network):
#   compose config, hadolint, kubernetes-validate --strict, the operators' custom resources against
#   their JSON schemas (devtools/validate_crds.py), yamllint, kubectl kustomize, promtool check rules
#   on the alert rules, checkov.
# Usage: scripts/validate-deploy.sh
#   VENV=path/to/venv (default .venv), K8S_VERSIONS="1.31.0 1.37.0", KUBECTL=kubectl (optional tool)
#   CHECKOV=path/to/checkov (default .venv-checkov/bin/checkov, made by scripts/setup.sh)
#   CRD_SCHEMAS=folder of the CRD schemas (default ../shared/crd-schemas)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN="$VENV/bin"
K8S_VERSIONS=${K8S_VERSIONS:-"1.31.0 1.37.0"}
KUBECTL=${KUBECTL:-kubectl}
CHECKOV=${CHECKOV:-.venv-checkov/bin/checkov}
# CRD kinds (operators, KEDA): kubernetes-validate has no schema for them.
CRD_GROUPS='rabbitmq.com|mongodbcommunity.mongodb.com|keda.sh|cert-manager.io|monitoring.coreos.com'
RULES=kubernetes/components/monitoring/prometheusrule.yaml

failures=0
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }

for tool in hadolint kubernetes-validate yamllint python; do
    [ -x "$BIN/$tool" ] || { echo "missing $BIN/$tool: run .venv/bin/pip install -e '.[test]'" >&2; exit 2; }
done

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# Keeps the built-in kinds of a multi-document YAML stream (stdin) and names the CRD kinds it drops.
builtin_only() {
    "$BIN/python" -c '
import re, sys, yaml
crd = re.compile(r"^(%s)/" % sys.argv[1])
kept = []
for doc in yaml.safe_load_all(sys.stdin):
    if not doc:
        continue
    if crd.match(doc.get("apiVersion", "")):
        print("  skip CRD kind %s/%s" % (doc["kind"], doc["metadata"]["name"]), file=sys.stderr)
    else:
        kept.append(doc)
if not kept:
    sys.exit("no built-in resources found")
yaml.safe_dump_all(kept, sys.stdout, sort_keys=False)
' "$CRD_GROUPS"
}

k8s_validate() { # file label
    local out
    # shellcheck disable=SC2086  # word splitting of the version list is intended
    if ! out=$("$BIN/kubernetes-validate" --strict --quiet $(printf -- '-k %s ' $K8S_VERSIONS) "$1" 2>&1); then
        printf '%s\n' "$out"
        fail "kubernetes-validate: $2"
    elif [ -n "$out" ]; then
        # a WARN means a kind without a schema slipped through: treat it as a failure
        printf '%s\n' "$out"
        fail "kubernetes-validate: $2 (unexpected warnings)"
    else
        echo "ok  $2"
    fi
}

# --- (a) docker compose -------------------------------------------------------------------
step "docker-compose config"
if ! command -v docker-compose >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's docker-compose"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    fi
fi
if command -v docker-compose >/dev/null 2>&1; then
    export JWT_SECRET=validate-only-dummy-value-of-48-characters-long POSTGRES_PASSWORD=validate-only
    for files in "docker/docker-compose.yml" "docker/docker-compose.yml docker/docker-compose.scale.yml"; do
        args=()
        for f in $files; do args+=(-f "$f"); done
        if docker-compose "${args[@]}" config -q; then echo "ok  $files"; else fail "compose config: $files"; fi
    done
    # the required variables really are required
    if env -u JWT_SECRET docker-compose -f docker/docker-compose.yml config -q >/dev/null 2>&1; then
        fail "compose config passes without JWT_SECRET"
    else
        echo "ok  JWT_SECRET is required"
    fi
    if env -u POSTGRES_PASSWORD docker-compose -f docker/docker-compose.yml config -q >/dev/null 2>&1; then
        fail "compose config passes without POSTGRES_PASSWORD"
    else
        echo "ok  POSTGRES_PASSWORD is required"
    fi
    unset JWT_SECRET POSTGRES_PASSWORD
else
    fail "docker-compose not found (install Debian's docker-compose package, or run as root)"
fi

# --- (b) Dockerfile -----------------------------------------------------------------------
step "hadolint docker/Dockerfile"
if "$BIN/hadolint" docker/Dockerfile; then echo "ok  docker/Dockerfile"; else fail "hadolint"; fi
if sh -n docker/entrypoint.sh; then echo "ok  docker/entrypoint.sh (sh -n)"; else fail "entrypoint syntax"; fi

# --- (c) Kubernetes schemas (bundled with kubernetes-validate; no network) ----------------
step "kubernetes-validate --strict (k8s $K8S_VERSIONS, built-in kinds)"
if command -v "$KUBECTL" >/dev/null 2>&1; then
    have_kubectl=1
    keda_check="$workdir/keda-check"
    mkdir -p "$keda_check"
    rel=$("$BIN/python" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$PWD/kubernetes" "$keda_check")
    printf 'resources: [%s/overlays/prod]\ncomponents: [%s/components/keda, %s/components/monitoring]\n' \
        "$rel" "$rel" "$rel" > "$keda_check/kustomization.yaml"
    for target in kubernetes/base kubernetes/overlays/dev kubernetes/overlays/prod "$keda_check"; do
        label=${target#"$workdir/"}
        rendered="$workdir/$(echo "$label" | tr / -).yaml"
        if ! "$KUBECTL" kustomize "$target" > "$rendered.all"; then
            fail "kubectl kustomize $label"
            continue
        fi
        if builtin_only < "$rendered.all" 2>&1 > "$rendered"; then
            k8s_validate "$rendered" "$label (rendered)"
        else
            fail "no built-in kinds in $label"
        fi
        if "$BIN/python" -m devtools.validate_crds "$rendered.all" > "$rendered.crd" 2>&1; then
            echo "ok  $label (custom resources): $(tail -1 "$rendered.crd")"
        else
            cat "$rendered.crd"
            fail "custom resources of $label"
        fi
    done
else
    have_kubectl=0
    echo "kubectl not found: validating kubernetes/base files one by one instead of rendered overlays"
    for f in kubernetes/base/*.yaml kubernetes/components/monitoring/dashboard.yaml; do
        case "$(basename "$f")" in kustomization.yaml|secret.example.yaml) continue ;; esac
        if builtin_only < "$f" 2>&1 > "$workdir/one.yaml"; then
            k8s_validate "$workdir/one.yaml" "$f"
        else
            fail "no built-in kinds in $f"
        fi
    done
fi
if [ "$have_kubectl" = 0 ]; then
    if "$BIN/python" -m devtools.validate_crds kubernetes/operators/*.yaml kubernetes/components/keda/*.yaml \
            kubernetes/components/monitoring/*.yaml; then
        echo "ok  kubernetes/operators, components/keda, components/monitoring (custom resources)"
    else
        fail "custom resources"
    fi
fi
# the example Secret is not in any kustomization
k8s_validate kubernetes/base/secret.example.yaml kubernetes/base/secret.example.yaml

# --- (d) YAML style ------------------------------------------------------------------------
step "yamllint docker/ kubernetes/ config/"
yaml_dirs=()
for d in docker kubernetes config; do [ -d "$d" ] && yaml_dirs+=("$d"); done
if "$BIN/yamllint" --strict -c kubernetes/.yamllint "${yaml_dirs[@]}"; then
    echo "ok  ${yaml_dirs[*]}"
else
    fail "yamllint"
fi

# --- (e) kustomize builds ------------------------------------------------------------------
step "kubectl kustomize"
if [ "$have_kubectl" = 1 ]; then
    echo "ok  base, overlays/dev, overlays/prod and overlays/prod + components/keda + components/monitoring rendered above"
else
    echo "SKIP: kubectl not installed (the overlays were not rendered)"
fi

# --- (f) alert rules -----------------------------------------------------------------------
step "promtool check rules $RULES"
if command -v promtool >/dev/null 2>&1; then
    "$BIN/python" -c 'import sys, yaml; yaml.safe_dump({"groups": yaml.safe_load(open(sys.argv[1]))["spec"]["groups"]}, sys.stdout)' \
        "$RULES" > "$workdir/rules.yml"
    if promtool check rules "$workdir/rules.yml"; then echo "ok  $RULES"; else fail "promtool check rules"; fi
else
    fail "promtool not found (Debian's prometheus package: scripts/setup.sh installs it as root)"
fi

# --- (g) checkov: the rendered prod overlay (with KEDA), the compose files, the Dockerfile ----
step "checkov"
if [ ! -x "$CHECKOV" ]; then
    fail "checkov not found at $CHECKOV (scripts/setup.sh installs it into .venv-checkov)"
elif [ "$have_kubectl" = 1 ]; then
    # every deliberate exception is skipped in its manifest, with its reason: no skips here
    for target in "$workdir/kubernetes-overlays-prod.yaml.all" "$workdir/keda-check.yaml.all"; do
        cp "$target" "$workdir/checkov-$(basename "$target" .yaml.all).yaml"
    done
    for scanned in "$workdir/checkov-kubernetes-overlays-prod.yaml:kubernetes" "$workdir/checkov-keda-check.yaml:kubernetes" \
            "docker/docker-compose.yml:all" "docker/docker-compose.scale.yml:all" "docker/Dockerfile:all"; do
        file=${scanned%:*}; framework=${scanned##*:}
        args=(-f "$file" --skip-download --compact --output cli)
        [ "$framework" = all ] || args+=(--framework "$framework")
        if out=$("$CHECKOV" "${args[@]}" 2>&1); then
            summary=$(printf '%s\n' "$out" | grep -E 'Passed checks' | tr '\n' ' ' || true)
            echo "ok  checkov $(basename "$file"): ${summary:-no findings}"
        else
            printf '%s\n' "$out" | grep -vE '^\s*$' | tail -40
            fail "checkov $(basename "$file")"
        fi
    done
else
    fail "checkov needs the rendered overlays (kubectl)"
fi

echo
if [ "$failures" -gt 0 ]; then
    echo "validate-deploy: $failures check(s) failed"
    exit 1
fi
echo "validate-deploy: all checks passed"
