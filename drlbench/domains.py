"""Hyperparameter domains, declared once per field next to its type.

Every field of an agent's or a loop's `Config` dataclass is declared with `hp(...)`:

    gamma: float = hp("(0, 1]")                          # an interval, open or closed at each end
    hidden_sizes: tuple[int, ...] = hp("[1, inf)")       # for tuples: every item
    actor_q: str = hp(choices=("min", "mean"))           # strings: the allowed values
    target_entropy: float | str = hp("(-inf, inf)", choices=("auto",))
    batch_size: int = hp("[1, inf)", at_most="buffer_size")   # cross-field relations
    alpha_resample: bool = hp()                          # booleans need no domain

`config.build` checks preset values and `--set` overrides against the domains, and
`config.check_relations` checks the relations once the whole run is known. Relations name
other fields, or `steps` / `num_envs` of the run, or a product of them (`n_steps*num_envs`).
No agent validates its own hyperparameters.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

INT64_MAX = 2**63 - 1
_INTERVAL = re.compile(r"^\s*([\[(])\s*(\S+?)\s*,\s*(\S+?)\s*([\])])\s*$")


@dataclass(frozen=True)
class Domain:
    low: float = -math.inf
    high: float = math.inf
    low_closed: bool = False
    high_closed: bool = False
    numeric: bool = False                  # numbers allowed at all (an interval was declared)
    choices: tuple[str, ...] = ()          # allowed strings
    at_most: str | None = None             # value <= this field / run quantity
    below: str | None = None               # value <  this field / run quantity
    divides: str | None = None             # this field / run quantity is a multiple of the value
    soft: bool = False                     # a broken relation warns instead of refusing

    @classmethod
    def parse(cls, interval: str | None, choices=(), **relations) -> "Domain":
        if interval is None:
            return cls(choices=tuple(choices), **relations)
        match = _INTERVAL.match(interval)
        if not match:
            raise ValueError(f"bad interval {interval!r}; write it like '(0, 1]' or '[1, inf)'")
        left, low, high, right = match.groups()
        low, high = float(low), float(high)
        if not low <= high:
            raise ValueError(f"empty interval {interval!r}")
        return cls(low, high, left == "[" and math.isfinite(low), right == "]" and math.isfinite(high),
                   True, tuple(choices), **relations)

    # --- membership -------------------------------------------------------------------
    def contains(self, value: Any) -> bool:
        if isinstance(value, tuple):
            return all(self.contains(item) for item in value)
        if isinstance(value, bool):
            return True
        if isinstance(value, str):
            return value in self.choices
        if not self.numeric or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        under = value <= self.high if self.high_closed else value < self.high
        return above and under

    # --- text -------------------------------------------------------------------------
    def interval(self) -> str:
        def end(x: float) -> str:
            return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"
        return f"{'[' if self.low_closed else '('}{end(self.low)}, {end(self.high)}{']' if self.high_closed else ')'}"

    def describe(self, annotation: Any = None) -> str:
        """'in (0, 1]', 'one of: min, mean', 'auto or a number in (-inf, inf)' ..."""
        kind = _kind(annotation)
        if self.numeric and self.choices:
            return f"{', '.join(self.choices)} or {kind} in {self.interval()}"
        if self.numeric:
            return f"{kind} in {self.interval()}"
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        return "true or false"

    def relations(self) -> list[tuple[str, str]]:
        """(relation, bound expression) pairs declared on this field."""
        return [(r, b) for r, b in (("at_most", self.at_most), ("below", self.below), ("divides", self.divides)) if b]

    def relation_text(self) -> str:
        texts = [f"<= {self.at_most}{' (else a warning)' if self.soft else ''}" if self.at_most else "", f"< {self.below}" if self.below else "",
                 f"divides {self.divides}" if self.divides else ""]
        return ", ".join(t for t in texts if t)

    def boundaries(self, integer: bool) -> tuple[list[float], list[float]]:
        """(values just inside, values just outside) each finite end: for the property tests."""
        step = 1 if integer else None
        inside, outside = [], []
        for x, closed, sign in ((self.low, self.low_closed, 1), (self.high, self.high_closed, -1)):
            if not math.isfinite(x):
                continue
            nudge = step or max(abs(x) * 1e-6, 1e-6)
            inside.append(x if closed else x + sign * nudge)
            outside.append(x - sign * nudge if closed else x)
        return inside, outside


# relation -> (holds(value, bound), wording for messages)
RELATIONS = {
    "at_most": (lambda value, bound: value <= bound, "be at most"),
    "below": (lambda value, bound: value < bound, "be below"),
    "divides": (lambda value, bound: value != 0 and bound % value == 0, "divide"),
}


def _kind(annotation: Any) -> str:
    text = str(annotation)
    if annotation is int or ("int" in text and "float" not in text):
        return "an integer"
    return "a number"


def hp(interval: str | None = None, *, choices=(), at_most: str | None = None, below: str | None = None,
       divides: str | None = None, soft: bool = False) -> Any:
    """A dataclass field (no default) carrying its domain; see the module docstring. `soft`: the
    relations only warn (the run still makes sense, e.g. random actions for the whole run)."""
    return field(metadata={"domain": Domain.parse(interval, choices, at_most=at_most, below=below,
                                                  divides=divides, soft=soft)})


def domain_of(dataclass_field) -> Domain | None:
    return dataclass_field.metadata.get("domain")


def quantity(expression: str, values: dict[str, Any]) -> float:
    """`buffer_size` or `n_steps*num_envs`, evaluated on the run's values."""
    product = 1
    for name in expression.split("*"):
        product *= values[name.strip()]
    return product
