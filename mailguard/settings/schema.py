"""The schema's building blocks: strict options tables that refuse unknown keys, and the value
types IT writes (actions, sizes, host:port, domains, networks, addresses), each with its own
wording for what is wrong with a value."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict

from mailguard.model import CHOSEN, Action

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class KeyProblem(ValueError):
    """A problem with one key of a table, found while checking the table as a whole (two
    keys that must be set together): reported as `table.key: problem`."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key, self.problem = key, problem

    def under(self, table: str) -> KeyProblem:
        """The same problem, placed under a sub-table's name (`hours.timezone`)."""
        return KeyProblem(f"{table}.{self.key}", self.problem)


class Options(BaseModel):
    """One TOML table: strict values, no unknown keys (typos), frozen once read."""

    # defer_build: a table's validator is made when it is first used, so a command that
    # reads only the stores does not pay for the checks' tables at start.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              use_attribute_docstrings=True, defer_build=True)


Whole = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]
Texts = tuple[Text, ...]


def _action(value: Any) -> Any:
    if isinstance(value, Action):
        return value
    options = [a.value for a in CHOSEN]
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"must be one of {', '.join(options)}; got {value!r}")
    return Action(value)


Chosen = Annotated[Action, BeforeValidator(_action)]
"""What a check does with what it finds: off, log, notify, quarantine or reject."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f'must be a size such as "35MiB" or "100KB", got {value!r}')
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])


Size = Annotated[int, BeforeValidator(_size)]
"""A byte size: 35MiB, 100KB, 1048576."""


def parse_listen(value: Any) -> tuple[str, int]:
    host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'must be "host:port" such as "127.0.0.1:10025", got {value!r}')
    return host, int(port)


Listen = Annotated[tuple[str, int], BeforeValidator(parse_listen)]
"""An address to listen on, "host:port"."""


def parse_domain(value: Any) -> str:
    d = value.strip().lower().rstrip(".") if isinstance(value, str) else ""
    if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}", d):
        raise ValueError(f"{value!r} is not a domain name")
    return d


Domain = Annotated[str, BeforeValidator(parse_domain)]


def _network(value: Any) -> Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not an address or network") from None


Networks = tuple[Annotated[Network, BeforeValidator(_network)], ...]


def _address(value: str) -> str:
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValueError(f"{value!r} is not an email address")
    return value


Address = Annotated[Text, AfterValidator(_address)]
"""An email address, or "" for none."""


class CheckOptions(Options):
    """A `[checks.NAME]` table. Every check cites a policy clause, which a preset sets to the
    trust's own."""

    clause: Text = ""
    """The policy reference this check's findings cite (presets set the trust's own)."""

    @property
    def present(self) -> bool:
        """Whether the file has this table at all: most checks are off without one."""
        return bool(self.model_fields_set)

    def chosen(self, key: str, present: Action, absent: Action = Action.OFF) -> Action:
        """The action at `key`, or its default: `present` when the table is there."""
        value = getattr(self, key)
        return value if value is not None else (present if self.present else absent)
