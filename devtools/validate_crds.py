"""Validates the operators' custom resources in multi-document YAML files against their JSON
schemas (the layout `<group>/<kind>_<version>.json` of ../shared/crd-schemas, from the public CRD
catalogue), strictly: unknown fields fail where the CRD forbids them.

    python -m devtools.validate_crds [--schemas DIR] FILE...

DIR defaults to $CRD_SCHEMAS, else ../shared/crd-schemas beside the repository. Without it, says that
it skipped these kinds and exits 0. A document of a group that has schemas but not for its kind or
version is named, not checked. Built-in kinds are left to kubernetes-validate.
"""
import argparse
import json
import os
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.environ.get("CRD_SCHEMAS") or os.path.join(os.path.dirname(ROOT), "shared", "crd-schemas")


def problems(doc, schemas):
    """Sentences for what is wrong with one document; None when no schema group covers it."""
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    if not group or not os.path.isdir(os.path.join(schemas, group)):
        return None
    path = os.path.join(schemas, group, "%s_%s.json" % (doc.get("kind", "").lower(), version))
    if not os.path.exists(path):
        print("note: no schema for %s %s (%s): not checked" % (doc.get("apiVersion"), doc.get("kind"), path))
        return []
    with open(path) as handle:
        schema = json.load(handle)
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
    return ["%s: %s" % ("/".join(str(p) for p in error.absolute_path) or "(document)", error.message)
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schemas", default=DEFAULT)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.schemas):
        print("SKIP: no CRD schemas at %s (set CRD_SCHEMAS): the operators' kinds are not checked"
              % args.schemas)
        return 0
    failed = checked = 0
    for path in args.files:
        with open(path) as handle:
            docs = [doc for doc in yaml.safe_load_all(handle) if doc]
        for doc in docs:
            found = problems(doc, args.schemas)
            if found is None:
                continue
            checked += 1
            name = "%s %s/%s" % (path, doc.get("kind"), (doc.get("metadata") or {}).get("name"))
            for problem in found:
                print("FAIL %s: %s" % (name, problem))
            failed += bool(found)
    print("%d custom resource(s) checked against %s, %d failed" % (checked, args.schemas, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
