"""The compact text form of a criterion, parsed and rendered.

``[ENDPOINT:] METRIC OP VALUE [for|over DURATION] [, abort]``

============  ================================================================
ENDPOINT      method and name as Locust reports them (``GET /api/items``);
              omitted: the aggregated row
METRIC        ``avg min max median p50 p66 p75 p80 p90 p95 p98 p99 p99.9
              p99.99 p100 rps fail_rps error_rate requests failures users``
OP            ``< <= > >= == !=``: what must hold
VALUE         ``300``, ``300ms``, ``1.5s``, ``1%``, ``baseline * 1.10``,
              ``baseline + 50ms``
DURATION      ``10s``, ``1m``, ``1m30s``, ``1h``
============  ================================================================

``render(parse(text))`` gives the canonical spelling, and ``parse(render(t)) == t``
for every valid :class:`~loadmanager.Threshold`.
"""

from __future__ import annotations

import re

from ._constraints import parse_duration
from ._suggest import did_you_mean
from .errors import ValidationError
from .models import METRICS, OPERATORS, Threshold

__all__ = ["parse", "render"]

_METRIC = re.compile(r"[a-z_]+(?:\d+(?:\.\d+)?)?")
_OP = re.compile(r"<=|>=|==|!=|<|>")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_UNIT = re.compile(r"ms|s|%")
_SPACED_UNIT = re.compile(r"\s+(ms|s|%)(?![A-Za-z])")
_BASELINE = re.compile(r"baseline\s*([*+])\s*")
_MODE = re.compile(r"(for|over)\s+")
_DURATION = re.compile(r"\d+[hms](?:\d+[ms])?(?:\d+s)?")
_ABORT = re.compile(r",\s*abort\s*$")
_SPACE = re.compile(r"\s*")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)

    def fail(self, expected: str, hint: str = "") -> ValidationError:
        found = self.text[self.pos : self.pos + 12] or "the end"
        return ValidationError.single(
            "", f"at position {self.pos + 1}: expected {expected}, found {found!r}{hint}"
        )

    def skip(self) -> None:
        match = _SPACE.match(self.text, self.pos, self.end)
        if match:
            self.pos = match.end()

    def take(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        match = pattern.match(self.text, self.pos, self.end)
        if match:
            self.pos = match.end()
        return match


def _number(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def parse(text: object) -> Threshold:
    """The criterion a compact string describes.

    Raises:
        ValidationError: saying at which position what was expected.
    """
    if not isinstance(text, str):
        raise ValidationError.single("", "must be a string or an object")
    if len(text) > 500:
        raise ValidationError.single("", "must be at most 500 characters")
    p = _Parser(text)
    abort = _ABORT.search(text)
    if abort:
        p.end = abort.start()
    colon = text.rfind(":", 0, p.end)
    scope = None
    if colon >= 0:
        scope = text[:colon].strip()
        if not scope:
            raise ValidationError.single("", "at position 1: expected an endpoint before ':'")
        p.pos = colon + 1
    p.skip()
    metric = p.take(_METRIC)
    if metric is None or metric.group() not in METRICS:
        hint = ""
        if metric is not None:
            p.pos = metric.start()
            hint = did_you_mean(metric.group(), METRICS)
        raise p.fail("a metric (" + ", ".join(METRICS) + ")", hint)
    p.skip()
    op = p.take(_OP)
    if op is None:
        raise p.fail("an operator (" + ", ".join(OPERATORS) + ")")
    p.skip()
    relation = p.take(_BASELINE)
    number = p.take(_NUMBER)
    if number is None:
        raise p.fail("a number, or 'baseline * N' or 'baseline + N'")
    unit = p.take(_UNIT)
    spaced = None if unit else _SPACED_UNIT.match(text, p.pos, p.end)
    if spaced:
        written = number.group() + spaced.group(1)
        raise ValidationError.single(
            "",
            f"at position {spaced.start(1) + 1}: no space between a number and its unit: "
            f"write {written!r}",
        )
    p.skip()
    window = mode = None
    if p.pos < p.end:
        found_mode = p.take(_MODE)
        if found_mode is None:
            raise p.fail("'for DURATION', 'over DURATION' or ', abort'")
        duration = p.take(_DURATION)
        seconds = parse_duration(duration.group()) if duration else None
        if duration is None or seconds is None:
            raise p.fail("a duration such as 10s, 1m or 1m30s")
        mode, window = found_mode.group(1), float(seconds)
        p.skip()
        if p.pos < p.end:
            raise p.fail("the end, or ', abort'")
    try:
        value = _number(number.group())
    except ValueError:
        raise ValidationError.single(
            "", f"at position {number.start() + 1}: the number is out of range"
        ) from None
    return Threshold(
        metric=metric.group(),
        op=op.group(),
        value=value,
        scope=scope,
        unit=unit.group() if unit else None,
        baseline=relation.group(1) if relation else None,
        window=window,
        window_mode=mode,
        abort_on_fail=abort is not None,
    )


def _num(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _duration(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def render(threshold: Threshold) -> str:
    """The canonical compact string of a criterion."""
    text = f"{threshold.scope}: " if threshold.scope else ""
    text += f"{threshold.metric} {threshold.op} "
    if threshold.baseline:
        text += f"baseline {threshold.baseline} "
    text += _num(threshold.value) + (threshold.unit or "")
    if threshold.window is not None and threshold.window_mode:
        text += f" {threshold.window_mode} {_duration(threshold.window)}"
    if threshold.abort_on_fail:
        text += ", abort"
    return text
