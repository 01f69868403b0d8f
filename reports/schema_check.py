"""A harness document checked against the JSON Schema of its kind (reports/schema/<kind>.schema.json).

The schemas use a subset of draft 2020-12, and this checks exactly that subset: type, properties,
required, additionalProperties, items, enum, const, $ref (#/$defs/NAME), anyOf and minimum.
`python -m reports.schema_check REPORT.json`: exit 0 when valid, 1 when not, 2 for a file that
cannot be read or a kind without a schema."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from operators.core.exits import EXIT_FAIL, EXIT_PASS, EXIT_USAGE
from reports.schemas import DocumentKindError

ERRORS_SHOWN = 20
JSON_TYPES = {
    "null": lambda value: value is None,
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "string": lambda value: isinstance(value, str),
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}


def validate(document: Any, schema: dict) -> list[str]:
    """Every way `document` departs from `schema`, each naming its JSON path (e.g. `cases[3].verdict`)."""
    return check(document, schema, schema, "")


def check(value: Any, schema: dict, root: dict, path: str) -> list[str]:
    where = path or "(document)"
    errors = check(value, definition(root, schema["$ref"]), root, path) if "$ref" in schema else []
    if "type" in schema and not accepts_type(schema, value):
        return errors + [f"{where}: expected {' or '.join(type_names(schema))}, found {type_of(value)}"]
    if "const" in schema and not same(value, schema["const"]):
        errors.append(f"{where}: expected {json.dumps(schema['const'])}, found {json.dumps(value)}")
    if "enum" in schema and not any(same(value, option) for option in schema["enum"]):
        expected = ", ".join(map(json.dumps, schema["enum"]))
        errors.append(f"{where}: expected one of {expected}, found {json.dumps(value)}")
    if "minimum" in schema and JSON_TYPES["number"](value) and value < schema["minimum"]:
        errors.append(f"{where}: expected at least {schema['minimum']}, found {value}")
    if isinstance(value, dict):
        missing = [name for name in schema.get("required", ()) if name not in value]
        errors += [f"{where}: missing required field '{name}'" for name in missing]
        properties, others = schema.get("properties", {}), schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += check(item, properties[key], root, child(path, key))
            elif others is False:
                errors.append(f"{child(path, key)}: unknown field")
            elif others is not True:
                errors += check(item, others, root, child(path, key))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += check(item, schema["items"], root, child(path, index))
    if "anyOf" in schema:
        options = [definition(root, o["$ref"]) if "$ref" in o else o for o in schema["anyOf"]]
        attempts = [check(value, option, root, path) for option in options]
        if all(attempts) and not any(accepts_type(option, value) for option in options):
            names = [name for option in options for name in type_names(option)]
            errors.append(f"{where}: expected {' or '.join(names)}, found {type_of(value)}")
        elif all(attempts):  # the errors of the alternative of the value's type that comes nearest
            errors += min((a for a, o in zip(attempts, options) if accepts_type(o, value)), key=len)
    return errors


def definition(root: dict, reference: str) -> dict:
    prefix = "#/$defs/"
    if not reference.startswith(prefix) or reference[len(prefix):] not in root.get("$defs", {}):
        raise ValueError(f"unsupported or unknown $ref {reference!r}")
    return root["$defs"][reference[len(prefix):]]


def type_names(schema: dict) -> list[str]:
    declared = schema.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)


def accepts_type(schema: dict, value: Any) -> bool:
    return "type" not in schema or any(JSON_TYPES[name](value) for name in type_names(schema))


def type_of(value: Any) -> str:
    return next((name for name in ("null", "boolean", "integer", "number", "string", "array", "object")
                 if JSON_TYPES[name](value)), type(value).__name__)


def same(value: Any, expected: Any) -> bool:
    """JSON equality: true is not 1."""
    return value == expected and isinstance(value, bool) == isinstance(expected, bool)


def child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def schema_kinds() -> list[str]:
    suffix = ".schema.json"
    folder = resources.files("reports") / "schema"
    return sorted(entry.name[:-len(suffix)] for entry in folder.iterdir() if entry.name.endswith(suffix))


def schema_for(kind: str) -> dict:
    """The JSON Schema of document kind `kind`; DocumentKindError for a kind without one."""
    if kind not in schema_kinds():
        raise DocumentKindError(f"no schema for kind {kind!r} (schemas exist for {', '.join(schema_kinds())})")
    return json.loads((resources.files("reports") / "schema" / f"{kind}.schema.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.schema_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a JSON document the harness wrote (its `kind` picks the schema)")
    report = parser.parse_args(argv).report
    try:
        document = json.loads(report.read_text(encoding="utf-8"))
        kind = document.get("kind") if isinstance(document, dict) else None
        schema = schema_for(kind)
    except OSError as error:
        print(f"error: cannot read {report}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:  # not JSON, not UTF-8, or a kind without a schema
        print(f"error: {report}: {error}", file=sys.stderr)
        return EXIT_USAGE
    errors = validate(document, schema)
    name = f"{kind} {document.get('schema_version')} document"
    if not errors:
        print(f"{report}: valid {name}")
        return EXIT_PASS
    print(f"{report}: not a valid {name}:")
    print("\n".join(f"  {error}" for error in errors[:ERRORS_SHOWN]))
    if len(errors) > ERRORS_SHOWN:
        print(f"  ... and {len(errors) - ERRORS_SHOWN} more errors")
    return EXIT_FAIL


if __name__ == "__main__":
    raise SystemExit(main())
