"""The status transition table, enumerated in full."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

import loadmanager as lm
from loadmanager.testing import make_load_test, make_run

AT = datetime(2025, 1, 1, tzinfo=timezone.utc)
S = lm.RunStatus

ALLOWED = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.FAILED),
    (S.RUNNING, S.STOPPING),
    (S.RUNNING, S.FINISHED),
    (S.RUNNING, S.STOPPED),
    (S.RUNNING, S.FAILED),
    (S.STOPPING, S.STOPPED),
    (S.STOPPING, S.FAILED),
}


def test_the_table_is_exactly_the_documented_one() -> None:
    table = {(a, b) for a, targets in lm.TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED))
def test_allowed_transitions_happen(source: lm.RunStatus, target: lm.RunStatus) -> None:
    run = make_run(make_load_test(), status=source)
    moved = run.transition(target, at=AT, actor="bob", reason="why")
    assert moved.status is target
    assert moved.audit.updated_by == "bob"
    assert moved.failure_reason == "why"
    assert (moved.ended_at == AT) is target.is_terminal
    if target is S.RUNNING:
        assert moved.started_at == AT


REFUSED = sorted(set(itertools.product(S, S)) - ALLOWED)


@pytest.mark.parametrize(("source", "target"), REFUSED)
def test_every_other_transition_is_refused(source: lm.RunStatus, target: lm.RunStatus) -> None:
    run = make_run(make_load_test(), status=source)
    with pytest.raises(lm.InvalidTransitionError) as info:
        run.transition(target, at=AT, actor="bob")
    assert (info.value.from_status, info.value.to_status) == (source.value, target.value)
    assert info.value.run_id == run.id


def test_refused_count_covers_the_whole_square() -> None:
    assert len(REFUSED) + len(ALLOWED) == len(S) ** 2 == 36


def test_terminal_and_active_partition_the_statuses() -> None:
    assert {s for s in S if s.is_terminal} == {S.FINISHED, S.STOPPED, S.FAILED}
    assert {s for s in S if s.is_active} == {S.PENDING, S.RUNNING, S.STOPPING}
