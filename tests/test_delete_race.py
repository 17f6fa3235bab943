"""Deleting a load test while a run of it starts: never inconsistent, on any backend.

Each round creates a test on a cluster of its own, then one thread starts a run
while another deletes the test, released together by a barrier. Whatever wins,
the data must stay whole: no run outlives its test, no run that a caller was
told is running disappears, and no master generates load without an active run.

CI runs 25 rounds per backend; ``nox -s races`` runs 300 (LM_RACE_ROUNDS).
The masters are fakes: the race is in the storage, not in Locust.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

import loadmanager as lm
from loadmanager.testing import FakeLocustMaster
from loadmanager.testing.seed import seed_load_test_body

ROUNDS = int(os.environ.get("LM_RACE_ROUNDS", "25"))
ACTOR = "user@example.com"


@pytest.fixture
def storage(each_storage: lm.Storage) -> lm.Storage:
    return each_storage


def race_once(orch: lm.Orchestrator, masters: dict[str, FakeLocustMaster], n: int) -> list[str]:
    """One round; returns what was inconsistent (nothing, when all is well)."""
    cluster = f"c{n}"
    test = orch.create_load_test({**seed_load_test_body(), "locustClusterId": cluster}, actor=ACTOR)
    barrier = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def start() -> None:
        barrier.wait()
        try:
            outcome["run"] = orch.start_run(test.id, actor=ACTOR)
        except lm.LoadManagerError as exc:
            outcome["start_error"] = exc

    def delete() -> None:
        barrier.wait()
        try:
            orch.delete_load_test(test.id, actor=ACTOR)
            outcome["deleted"] = True
        except lm.LoadManagerError as exc:
            outcome["delete_error"] = exc

    threads = [threading.Thread(target=start), threading.Thread(target=delete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    problems = []
    runs = orch.storage.runs.find(lm.RunFilter(load_test_id=test.id))
    try:
        orch.storage.load_tests.get(test.id)
        test_exists = True
    except lm.NotFoundError:
        test_exists = False
    if not test_exists and runs:
        problems.append(f"round {n}: {len(runs)} run(s) outlive their deleted test")
    started = outcome.get("run")
    if started is not None and not any(r.id == started.id for r in runs):
        problems.append(f"round {n}: running run {started.id} was deleted silently")
    active = [r for r in runs if r.is_active]
    if masters[cluster].state == "running" and not active:
        problems.append(f"round {n}: the master generates load for no active run")
    for error in (outcome.get("start_error"), outcome.get("delete_error")):
        if error is not None and not isinstance(
            error, (lm.NotFoundError, lm.ActiveRunError, lm.ConflictError)
        ):
            problems.append(f"round {n}: unexpected {error!r}")
    for run in active:  # end it, so the round leaves nothing running
        orch.storage.runs.update(
            run.transition(lm.RunStatus.FAILED, at=lm.utc_now(), actor=ACTOR, reason="round over")
        )
    return problems


def test_delete_racing_start_never_leaves_inconsistent_data(storage: lm.Storage) -> None:
    masters = {f"c{n}": FakeLocustMaster() for n in range(ROUNDS)}
    registry = lm.ClusterRegistry({name: f"http://{name}" for name in masters})
    with lm.Orchestrator(
        storage=storage,
        clusters=registry,
        client_factory=lambda config: masters[config.url.removeprefix("http://")],
        monitor=False,
    ) as orch:
        problems = [p for n in range(ROUNDS) for p in race_once(orch, masters, n)]
    assert problems == [], f"{len(problems)} inconsistent of {ROUNDS} rounds: {problems[:5]}"
