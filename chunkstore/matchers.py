"""Label matchers (``=``, ``!=``, ``=~``, ``!~``) as used by stream selectors.

Regex matchers are fully anchored and use RE2 (linear time, no catastrophic
backtracking).  A label that a stream does not have compares as ``""``, so a
matcher that matches the empty string also selects streams without the
label, exactly as in Loki and Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import re2

from chunkstore.errors import QueryError

__all__ = ["Matcher", "OPS"]

OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    """One ``name OP "value"`` condition on a stream's labels."""

    name: str
    op: str
    value: str
    _regex: object = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self):
        if self.op not in OPS:
            raise QueryError(f"matcher: unknown operator {self.op!r}")
        if self.op in ("=~", "!~"):
            try:
                # Prometheus' matchers (Loki's selectors): anchored, and `.`
                # matches a newline too, so {app=~".+"} selects every value.
                rx = re2.compile(f"^(?s:{self.value})$")
            except re2.error as exc:
                raise QueryError(f"matcher: invalid regex {self.value!r} for {self.name}: {exc}") from None
            object.__setattr__(self, "_regex", rx)

    def matches(self, value: str | None) -> bool:
        """Whether a label value (``None`` or ``""`` for absent) satisfies the matcher."""
        v = "" if value is None else value
        op = self.op
        if op == "=":
            return v == self.value
        if op == "!=":
            return v != self.value
        hit = self._regex.fullmatch(v) is not None  # type: ignore[attr-defined]
        return hit if op == "=~" else not hit

    @property
    def matches_empty(self) -> bool:
        return self.matches("")

    def __str__(self) -> str:
        v = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{v}"'
