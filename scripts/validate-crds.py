#!/usr/bin/env python3
"""Validates the custom resources under kubernetes/ against the JSON schemas of their CRDs.

kubernetes-validate knows only built-in kinds. Each document whose apiVersion group has a folder in
the schema directory is checked against <group>/<kind lower case>_<version>.json (the layout of
../shared/crd-schemas, see its README), strictly: the schemas forbid unknown fields where the CRD
does. Without a schema directory it says so and skips (exit 0); a kind the directory has no schema
for (rabbitmq.com's Policy) is named as skipped.

    python scripts/validate-crds.py [--schemas DIR] [PATH ...]     (default PATH: kubernetes)
    CRD_SCHEMAS=DIR overrides the default ../shared/crd-schemas (then ../../shared/crd-schemas).
"""
import argparse
import json
import os
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def schema_dir(given):
    candidates = [given, os.environ.get("CRD_SCHEMAS"),
                  os.path.join(ROOT, "..", "shared", "crd-schemas"),
                  os.path.join(ROOT, "..", "..", "shared", "crd-schemas")]
    for path in candidates:
        if path and os.path.isdir(path):
            return os.path.realpath(path)
    return None


def yaml_files(paths):
    for path in paths:
        if os.path.isfile(path):
            yield path
            continue
        for folder, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                if name.endswith((".yaml", ".yml")):
                    yield os.path.join(folder, name)


def check(doc, schemas):
    """None when `doc` is not a custom resource of a known group; its schema's path and errors."""
    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    if not group or not os.path.isdir(os.path.join(schemas, group)):
        return None
    path = os.path.join(schemas, group, "%s_%s.json" % (str(doc.get("kind", "")).lower(), version))
    if not os.path.exists(path):
        return path, None
    with open(path) as handle:
        schema = json.load(handle)
    validator = jsonschema.validators.validator_for(schema, jsonschema.Draft7Validator)(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return path, ["%s: %s" % ("/".join(str(p) for p in error.absolute_path) or "(root)", error.message)
                  for error in errors]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schemas")
    parser.add_argument("paths", nargs="*", default=[os.path.join(ROOT, "kubernetes")])
    args = parser.parse_args(argv)
    schemas = schema_dir(args.schemas)
    if schemas is None:
        print("SKIP: no CRD schema directory (../shared/crd-schemas or CRD_SCHEMAS): custom "
              "resources not validated")
        return 0
    checked = failed = 0
    for path in yaml_files(args.paths):
        with open(path) as handle:
            docs = [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]
        for doc in docs:
            result = check(doc, schemas)
            if result is None:
                continue
            schema, errors = result
            name = "%s %s/%s" % (os.path.relpath(path, ROOT), doc.get("kind"),
                                 (doc.get("metadata") or {}).get("name"))
            if errors is None:
                print("skip %s: no schema %s" % (name, os.path.relpath(schema, schemas)))
                continue
            checked += 1
            if errors:
                failed += 1
                print("FAIL %s" % name)
                for error in errors:
                    print("     %s" % error)
            else:
                print("ok  %s" % name)
    print("%d custom resource(s) checked against %s, %d failed" % (checked, schemas, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
