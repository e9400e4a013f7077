"""A schema error in IT's words: `file: table.key: problem`, the first problem found."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from mailguard.settings.schema import KeyProblem

_WHAT = {"int_type": "a whole number", "int_parsing": "a whole number",
         "int_from_float": "a whole number", "float_type": "a number",
         "float_parsing": "a number", "bool_type": "true or false",
         "bool_parsing": "true or false", "string_type": "a string",
         "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
         "frozen_set_type": "a list", "dict_type": "a table", "model_type": "a table",
         "model_attributes_type": "a table"}


def where(loc: tuple[Any, ...], tags: tuple[str, ...] = ()) -> str:
    """The dotted key of an error: list positions, dict-key markers and union tags left out."""
    return ".".join(str(p) for p in loc
                    if not isinstance(p, int) and p != "[key]" and p not in tags)


def problem(error: Any, tags: tuple[str, ...] = ()) -> tuple[str, str]:
    """(extra key, problem) for one pydantic error. `tags` are the "(kind)" tags of a table
    told apart by its `type` key (the relay sources)."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    kinds = ", ".join(t.strip("()") for t in tags)
    if kind == "union_tag_not_found":
        return "type", f"is required: one of {kinds}"
    if kind == "union_tag_invalid":
        return "type", f"must be one of {kinds}; got {ctx.get('tag', '').strip('()')!r}"
    cause = ctx.get("error")
    if isinstance(cause, KeyProblem):
        return cause.key, cause.problem
    if kind == "value_error":
        return "", str(cause) if cause is not None else error["msg"]
    if kind == "missing":
        return "", "is required"
    if kind == "extra_forbidden":
        return "", "unknown key (check the spelling; see README.md)"
    if kind == "greater_than_equal":
        return "", f"must be at least {ctx['ge']}, got {value!r}"
    if kind == "less_than_equal":
        return "", f"must be at most {ctx['le']}, got {value!r}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return "", f"must be one of {', '.join(options)}; got {value!r}"
    if kind in _WHAT:
        if isinstance(value, bool) and _WHAT[kind] != "true or false":
            return "", f"must be {_WHAT[kind]}, not true/false"
        return "", f"must be {_WHAT[kind]}, got {value!r}"
    return "", error["msg"][:1].lower() + error["msg"][1:]


def worded(file: str, e: ValidationError, tags: tuple[str, ...] = ()) -> str:
    first = e.errors(include_url=False)[0]
    key, text = problem(first, tags)
    at = where(first["loc"], tags)
    at = f"{at}.{key}" if at and key else (key or at)
    return f"{file}: {at}: {text}" if at else f"{file}: {text}"
