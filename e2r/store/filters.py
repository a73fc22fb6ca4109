"""Payload filters: a small backend-neutral record (`Filter` of `Condition`s, all must hold) and
the parser behind the CLI's `--filter` option (`lvef<40`, `views=PLAX`, `study_date>=20200101`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from e2r.errors import ConfigError
from e2r.store import schema

OPS = ("eq", "gte", "lte", "gt", "lt", "any")
RANGE_OPS = ("gte", "lte", "gt", "lt")


@dataclass(frozen=True)
class Condition:
    """One test on a payload field.

    op: `eq` (equals; on a list field: the list contains the value), `gte`/`lte`/`gt`/`lt`
    (numeric range), `any` (value is a list; the field equals, or the list field contains, any of them).
    """

    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise ConfigError(f"filter: field name must be a non-empty string, got {self.field!r}")
        if self.op not in OPS:
            raise ConfigError(f"filter on {self.field!r}: unknown op {self.op!r}; use one of {', '.join(OPS)}")
        v = self.value
        if self.op in RANGE_OPS:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"filter {self.field} {self.op}: needs a finite number, got {v!r}")
        elif self.op == "eq":
            if not isinstance(v, (str, int, float, bool)) or (isinstance(v, float) and not math.isfinite(v)):
                raise ConfigError(f"filter {self.field} eq: needs a string, number or bool, got {v!r}")
        else:
            if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not v:
                raise ConfigError(f"filter {self.field} any: needs a non-empty list of values, got {v!r}")
            kinds = {str if isinstance(x, str) else int if isinstance(x, int) and not isinstance(x, bool) else None
                     for x in v}
            if len(kinds) != 1 or None in kinds:
                raise ConfigError(f"filter {self.field} any: values must be all strings or all integers, got {v!r}")
            object.__setattr__(self, "value", tuple(v))


@dataclass(frozen=True)
class Filter:
    """All conditions must hold (an empty filter matches everything)."""

    must: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        must = tuple(self.must)
        for c in must:
            if not isinstance(c, Condition):
                raise ConfigError(f"filter: expected Condition records, got {type(c).__name__}")
        object.__setattr__(self, "must", must)

    def matches(self, payload: Mapping[str, Any]) -> bool:
        """Whether a payload passes the filter (the reference semantics the backends implement)."""
        return all(_matches(c, payload.get(c.field)) for c in self.must)


def _matches(c: Condition, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    values = [v for v in values if v is not None]
    if c.op == "eq":
        return any(v == c.value and isinstance(v, str) == isinstance(c.value, str) for v in values)
    if c.op == "any":
        return any(v in c.value for v in values)
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    cmp = {"gte": float.__ge__, "lte": float.__le__, "gt": float.__gt__, "lt": float.__lt__}[c.op]
    return any(cmp(float(v), float(c.value)) for v in nums)


_EXPR_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|==|=|>|<)\s*(.*?)\s*$")
_SYMBOL_OPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "=": "eq", "==": "eq"}


def parse_filter(
    exprs: Optional[Sequence[str]],
    fields: Optional[Mapping[str, str]] = None,
) -> Optional[Filter]:
    """Parse `--filter` expressions (`field OP value`, all must hold) into a Filter, or None if none.

    OP is one of `= == < <= > >=`; `field=a,b` means "any of a, b". Values are typed by the
    field's payload type (`fields`, default schema.STUDY_PAYLOAD_SCHEMA): float and integer fields
    take numbers, `study_date` takes YYYYMMDD or YYYY-MM-DD, keyword fields take text and no ranges.
    Raises ConfigError naming the expression and what to write instead.
    """
    if not exprs:
        return None
    fields = schema.STUDY_PAYLOAD_SCHEMA if fields is None else fields
    conditions = []
    for expr in exprs:
        m = _EXPR_RE.match(expr or "")
        if not m or not m.group(3):
            raise ConfigError(
                f"--filter {expr!r}: expected FIELD OP VALUE with OP one of = < <= > >= "
                "(e.g. 'lvef<40', 'views=PLAX', 'study_date>=20200101')"
            )
        field, sym, raw = m.groups()
        if field not in fields:
            raise ConfigError(f"--filter {expr!r}: unknown field {field!r}; filterable fields: {', '.join(fields)}")
        kind = fields[field]
        op = _SYMBOL_OPS[sym]
        parts = [p.strip() for p in raw.split(",")] if op == "eq" else [raw]
        if any(not p for p in parts):
            raise ConfigError(f"--filter {expr!r}: empty value in a comma-separated list")
        if op in RANGE_OPS and kind not in ("integer", "float"):
            raise ConfigError(f"--filter {expr!r}: {field} is a {kind} field; use '=' (ranges need a number field)")
        values = [_typed(expr, field, kind, p) for p in parts]
        if len(values) > 1:
            if kind == "float":
                raise ConfigError(f"--filter {expr!r}: lists of values need a keyword or integer field")
            conditions.append(Condition(field, "any", values))
        else:
            conditions.append(Condition(field, op, values[0]))
    return Filter(tuple(conditions))


def _typed(expr: str, field: str, kind: str, raw: str) -> Any:
    if field == "study_date":
        try:
            return schema.study_date_int(raw)
        except ConfigError:
            raise ConfigError(f"--filter {expr!r}: study_date needs YYYYMMDD or YYYY-MM-DD") from None
    try:
        if kind == "integer":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
    except ValueError:
        raise ConfigError(f"--filter {expr!r}: {field} needs a number, got {raw!r}") from None
    if kind == "bool":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ConfigError(f"--filter {expr!r}: {field} needs true or false, got {raw!r}")
        return raw.lower() in ("true", "1")
    return raw
