"""A deterministic instance of a JSON Schema, for the offline provider and the test fakes.

Covers the subset structured-output APIs accept (OpenAI strict mode, Gemini's
response_json_schema, Pydantic's output): object, array, string, number, integer, boolean,
null, enum, const, anyOf/oneOf/allOf, local $ref, min/max bounds. `hints` maps a property name
(lower case) to a preferred value, used when it fits that property's schema.
"""

from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 12


def schema_instance(schema: Mapping[str, Any], hints: Mapping[str, Any] | None = None) -> Any:
    return _instance(schema, schema, hints or {}, hint=None, depth=0)


def _resolve(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, Mapping) else {}
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def _type_of(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or ["null"]
        kind = kinds[0]
    if isinstance(kind, str):
        return kind.lower()  # Gemini's OpenAPI subset spells types in upper case
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _fits(value: Any, kind: str | None) -> bool:
    checks: dict[str, Any] = {
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    return kind in checks and checks[kind](value)


def _clamp_number(value: float, schema: Mapping[str, Any], kind: str) -> float | int:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"] + (1 if kind == "integer" else 1e-6)
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = schema["exclusiveMaximum"] - (1 if kind == "integer" else 1e-6)
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return round(value) if kind == "integer" else value


def _instance(root: Mapping[str, Any], schema: Any, hints: Mapping[str, Any], hint: Any, depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return None
    schema = _resolve(root, schema)
    if "const" in schema:
        return schema["const"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = [_resolve(root, o) for o in schema.get(combinator) or [] if isinstance(o, Mapping)]
        options = [o for o in options if _type_of(o) != "null"] or options
        if options:
            return _instance(root, {**schema, combinator: None, **options[0]}, hints, hint, depth + 1)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        if isinstance(hint, str):
            for choice in schema["enum"]:
                if isinstance(choice, str) and choice.lower() == hint.lower():
                    return choice
        return schema["enum"][0]
    kind = _type_of(schema)
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: _instance(root, sub, hints, hints.get(key.lower()), depth + 1) for key, sub in properties.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [_instance(root, schema.get("items", {}), hints, None, depth + 1) for _ in range(count)]
    if kind == "string":
        text = hint if isinstance(hint, str) else ""
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        return text[: schema["maxLength"]] if "maxLength" in schema else text
    if kind in ("number", "integer"):
        value = hint if _fits(hint, "number") else 0
        return _clamp_number(value, schema, kind)
    if kind == "boolean":
        return hint if _fits(hint, "boolean") else False
    return None
