"""Two OS processes race for one cluster's lease, 50 rounds, on one database.

Each round both racers wait on a shared marker, then try to add a pending run on
the same cluster. The parent checks that exactly one pending run exists, then
ends it (releasing the lease) and opens the next round.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mongo_server import database_uri, fresh_database_name

import loadmanager as lm
from loadmanager.testing import make_load_test

ROUNDS = 50

RACER = textwrap.dedent(
    """
    import sys, time
    import loadmanager as lm
    from loadmanager.testing import make_run
    url, test_id, me, rounds, marker = sys.argv[1:6]
    won = []
    with lm.connect(url) as s:
        test = s.load_tests.get(test_id)
        for n in range(int(rounds)):
            while True:
                try:
                    with open(marker) as f:
                        if int(f.read() or -1) >= n:
                            break
                except (OSError, ValueError):
                    pass
                time.sleep(0.0005)
            try:
                s.runs.add(make_run(test, id=f"r{n}-{me}"))
                won.append(n)
            except lm.ClusterBusyError:
                pass
            print(n, flush=True)
    print("won", *won, flush=True)
    """
)


@pytest.fixture(params=["sqlite", "mongodb"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lm.db'}"
        return
    import pymongo

    base = request.getfixturevalue("mongo_base")
    name = fresh_database_name()
    yield database_uri(base, name)
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(base)
    client.drop_database(name)
    client.close()


def test_processes_racing_for_one_lease_win_exactly_once_each_round(
    shared_url: str, tmp_path: Path
) -> None:
    with lm.connect(shared_url) as storage:
        test = storage.load_tests.add(make_load_test())
    marker = tmp_path / "round"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, shared_url, test.id, name, str(ROUNDS), str(marker)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    winners_per_round = []
    try:
        with lm.connect(shared_url) as storage:
            for n in range(ROUNDS):
                marker.write_text(str(n))
                for racer in racers:
                    assert racer.stdout is not None
                    assert racer.stdout.readline().strip() == str(n)
                active = storage.runs.find(lm.RunFilter(statuses=["pending"]))
                winners_per_round.append([r.id for r in active])
                for run in active:  # end the round: release the lease
                    ended = run.transition(lm.RunStatus.FAILED, at=run.audit.created_at, actor="t")
                    storage.runs.update(ended)
        outputs = []
        for racer in racers:
            assert racer.stdout is not None
            with racer.stdout:  # read through the stream readline() buffered
                outputs.append(racer.stdout.read())
        assert [racer.wait(timeout=60) for racer in racers] == [0, 0]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    assert all(len(w) == 1 for w in winners_per_round), winners_per_round
    won = [set(map(int, o.split()[1:])) for o in outputs]
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(range(ROUNDS))
