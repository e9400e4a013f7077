"""The README's key table, made from the schema (`mailguard keys`), so it cannot drift from
what the loader reads: every key, its default and what it does."""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from mailguard.settings.schema import Options

BEGIN = "<!-- keys: made by `mailguard keys --write README.md` from the schema; do not edit -->"
END = "<!-- /keys -->"
_UNITS = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def _models(annotation: Any) -> list[type[Options]]:
    """The options tables an annotation holds (directly, in a dict, or in a tagged union)."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Options):
        return [annotation]
    if origin is typing.Annotated:
        return _models(get_args(annotation)[0])
    if origin in (Union, getattr(__import__("types"), "UnionType", Union)):
        return [m for a in get_args(annotation) for m in _models(a)]
    return []


def _is_dict(annotation: Any) -> bool:
    return get_origin(annotation) is dict


def _choices(annotation: Any) -> tuple[str, ...]:
    for a in (annotation, *get_args(annotation)):
        if get_origin(a) is Literal:
            return tuple(str(x) for x in get_args(a))
    return ()


def _size(value: int) -> str:
    for unit, n in _UNITS:
        if value >= n and value % n == 0:
            return f"{value // n}{unit}"
    return str(value)


def shown(name: str, info: FieldInfo) -> str:
    """A field's default as IT would write it, or what it means when unset."""
    if info.default_factory is not None:
        value = info.default_factory()   # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return ""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, int) and ("size" in name or name in ("max_expanded", "max_text")):
        return f"`{_size(value)}`"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int) and \
            isinstance(value[0], str):
        return f"`{value[0]}:{value[1]}`"
    if isinstance(value, tuple | list | frozenset | dict):
        if not value:
            return "`[]`" if not isinstance(value, dict) else "`{}`"
        if all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], dt.time)
               for v in value):
            return ", ".join(f"`{a:%H:%M}-{b:%H:%M}`" for a, b in value)
        items = [str(v) for v in value]
        if all(isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network) for v in value):
            return ", ".join(f"`{i}`" for i in items)
        if len(items) > 3:
            return f"built-in list ({len(items)})"
        return ", ".join(f"`{i}`" for i in items)
    if isinstance(value, str):
        return f"`{value}`" if value and len(value) < 40 else ("unset" if not value
                                                                else "built-in pattern")
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _doc(cls: type[Options]) -> str:
    return " ".join((cls.__doc__ or "").split())


def rows(model: type[Options], prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, meaning) for every key of a table and the tables inside it."""
    out: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = info.annotation
        inner = _models(annotation)
        if _is_dict(annotation):
            value_type = get_args(annotation)[1]
            inner = _models(value_type)
            if inner:
                label = {"sources": "NAME", "categories": "NAME", "domains": "DOMAIN"}.get(
                    name, "NAME")
                if len(inner) > 1:   # a table told apart by its type
                    kinds = [m.model_fields["type"] for m in inner]
                    names = [_choices(k.annotation)[0] for k in kinds]
                    out.append((f"{key}.{label}.type", "required", " ".join(
                        f"`{n}`: {_doc(m)}" for n, m in zip(names, inner, strict=True))))
                for m in inner:
                    tag = f" ({_choices(m.model_fields['type'].annotation)[0]})" if len(
                        inner) > 1 else ""
                    out += [(k + tag, d, t) for k, d, t in rows(m, f"{key}.{label}.")
                            if not k.endswith(".type")]
                continue
        if inner and len(inner) == 1 and not _is_dict(annotation):
            out += rows(inner[0], f"{key}.")
            continue
        meaning = " ".join((info.description or "").split())
        default = shown(name, info)
        said = re.search(r"\s*\(default: ([^)]*)\)", meaning)
        if said:   # the docstring says what an unset key means: that is the default
            default, meaning = said.group(1), (meaning[:said.start()] + meaning[said.end():])
        choices = _choices(annotation)
        if choices and "one of" not in meaning:
            meaning = f"one of {', '.join(f'`{c}`' for c in choices)}. {meaning}".strip()
        out.append((key, default, meaning))
    return out


def table() -> str:
    """The whole key table, as Markdown."""
    from mailguard.config import document_model

    lines = ["| key | default | meaning |", "|---|---|---|",
             "| `preset` | unset | a trust's preset (`config/presets/`); this file's keys win "
             "over it |"]
    for key, default, meaning in rows(document_model()):
        cells = (c.replace("|", "\\|") for c in (default, meaning))
        lines.append(f"| `{key}` | {' | '.join(cells)} |")
    return "\n".join(lines)


def spliced(readme: str) -> str:
    """The README with the table between its markers replaced by the schema's."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"the README has no {BEGIN!r} … {END!r} markers")
    return pattern.sub(lambda _: f"{BEGIN}\n{table()}\n{END}", readme)


def write(path: Path) -> bool:
    """Bring the README's table up to date; True when it changed."""
    old = path.read_text(encoding="utf-8")
    new = spliced(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old
