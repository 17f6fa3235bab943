"""The judgement of a run against its load test's thresholds."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

import attrs

from . import _html, _units

__all__ = ["CriterionResult", "Outcome", "Verdict"]


class Outcome(str, enum.Enum):
    """How one criterion, or a whole verdict, came out."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_EVALUATED = "not_evaluated"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class CriterionResult:
    """One threshold, the figure observed for it, and whether it held.

    Attributes:
        criterion: The threshold as text, such as ``GET /items: p95 < 300``.
        observed: The figure Locust reported, or ``None`` when there was none;
            for a broken windowed criterion, the figure when it broke.
        threshold: The limit actually used (after units and the baseline).
        outcome: Passed, failed, or not evaluated (``reason`` says why).
        baseline: The baseline run's figure, for a relative criterion.
        at: When a windowed criterion broke.
    """

    criterion: str
    metric: str
    op: str
    threshold: float | None
    outcome: Outcome
    observed: float | None = None
    scope: str | None = None
    reason: str | None = None
    baseline: float | None = None
    at: datetime | None = None

    @property
    def observed_text(self) -> str:
        """The observed figure in the metric's own unit (``1.46 %``, ``312 ms``)."""
        return _units.show(self.metric, self.observed)

    @property
    def threshold_text(self) -> str:
        """The limit as a person reads it: ``< 1 %``, ``<= 300 ms``."""
        return f"{self.op} {_units.show(self.metric, self.threshold)}"

    @property
    def why(self) -> str:
        """Why it came out as it did; empty for a criterion that held."""
        if self.reason:
            return self.reason
        if self.outcome is not Outcome.FAILED:
            return ""
        text = f"{self.observed_text} is not {self.threshold_text}"
        if self.baseline is not None:
            text += f" (baseline {_units.show(self.metric, self.baseline)})"
        if self.at is not None:
            text += f"; broke at {self.at:%H:%M:%S}"
        return text


def _results(value: Iterable[CriterionResult]) -> tuple[CriterionResult, ...]:
    return tuple(value)


@attrs.frozen
class Verdict:
    """Passed only when every criterion held.

    A failed criterion fails the verdict; otherwise one that could not be
    evaluated makes it ``not_evaluated`` rather than silently passing. A run with
    no thresholds has no verdict at all. A verdict judges the system under test;
    a run that *failed* (its cluster broke) is a different thing and gets none.
    """

    outcome: Outcome
    results: tuple[CriterionResult, ...] = attrs.field(converter=_results)
    saturated: bool = False
    """A load generator passed 90 % CPU during the run: the verdict still
    counts, but its figures may include the generator's own queueing."""

    @classmethod
    def of(cls, results: Iterable[CriterionResult]) -> Verdict:
        """The verdict that a list of criterion results adds up to."""
        items = tuple(results)
        outcomes = {r.outcome for r in items}
        if Outcome.FAILED in outcomes:
            outcome = Outcome.FAILED
        elif Outcome.NOT_EVALUATED in outcomes:
            outcome = Outcome.NOT_EVALUATED
        else:
            outcome = Outcome.PASSED
        return cls(outcome, items)

    @property
    def passed(self) -> bool:
        """True when every criterion held."""
        return self.outcome is Outcome.PASSED

    def _repr_html_(self) -> str:
        flag = " <b>(load generator saturated)</b>" if self.saturated else ""
        heading = f"<p><b>verdict: {_html.esc(self.outcome.value)}</b>{flag}</p>"
        return heading + self.results_html()

    def results_html(self) -> str:
        """The criteria, their observed figures and outcomes, as an HTML table."""
        rows = [
            [r.criterion, r.observed_text, r.threshold_text, r.outcome.value, r.why]
            for r in self.results
        ]
        return _html.table(["criterion", "observed", "limit", "outcome", "why"], rows)

    @property
    def exit_code(self) -> int:
        """For CI gates: 0 passed, 1 failed, 2 not evaluated."""
        return {Outcome.PASSED: 0, Outcome.FAILED: 1, Outcome.NOT_EVALUATED: 2}[self.outcome]
