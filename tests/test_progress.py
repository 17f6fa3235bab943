"""The progress display of wait(): quiet in logs, live in terminals."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from loadmanager._progress import Progress, describe
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_snapshot

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_describe_shows_time_users_and_rps() -> None:
    run = make_run(make_load_test(default_run_time="1m30s"), status=RunStatus.RUNNING, at=T0)
    snap = make_snapshot(run.id, T0, user_count=7, current_rps=12.34)
    line = describe(run, snap, T0 + timedelta(seconds=75))
    assert "01:15 / 01:30" in line
    assert "users 7" in line
    assert "rps 12.3" in line


def test_a_log_gets_a_line_at_most_every_interval_and_the_last_one() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(True, out, log_every=5.0, monotonic=lambda: now[0])
    for second in range(12):
        now[0] = float(second)
        progress.show(f"tick {second}")
    progress.close("done")
    assert out.getvalue().splitlines() == ["tick 0", "tick 5", "tick 10", "done"]


def test_a_terminal_gets_one_line_redrawn_only_on_change() -> None:
    out = FakeTty()
    progress = Progress(True, out)
    for line in ["a long line", "a long line", "short"]:
        progress.show(line)
    progress.close("end")
    assert out.getvalue() == "\ra long line\rshort      \rend  \n"


def test_disabled_progress_writes_nothing() -> None:
    out = FakeTty()
    progress = Progress(False, out)
    progress.show("x")
    progress.close("y")
    assert out.getvalue() == ""
