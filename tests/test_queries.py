"""Comparisons, trends, exports, pictures and notebook displays (no cluster needed)."""

from __future__ import annotations

import csv
import io
import json
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest

import loadmanager as lm
from loadmanager.comparison import compare
from loadmanager.metrics import EndpointSummary, Percentiles
from loadmanager.queries import trend_html, trend_points
from loadmanager.status import RunStatus
from loadmanager.testing import make_load_test, make_run, make_snapshot, make_summary

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def row(
    key: str, requests: int, failures: int, rps: float, median: float, p95: float, p99: float
) -> EndpointSummary:
    method, name = key.split(" ", 1) if " " in key else ("", key)
    return EndpointSummary(
        method, name, requests, failures, median, 1.0, p99 * 2, median, 100.0, rps, 0.0,
        Percentiles(p50=median, p95=p95, p99=p99, p100=p99 * 2),
    )  # fmt: skip


def summary(*rows: EndpointSummary) -> lm.RunSummary:
    total = sum(r.num_requests for r in rows)
    fails = sum(r.num_failures for r in rows)
    agg = row("Aggregated", total, fails, sum(r.requests_per_sec for r in rows), 10, 50, 90)
    return lm.RunSummary(taken_at=T0, aggregated=agg, endpoints=rows)


BASE = summary(row("GET /a", 1000, 10, 100.0, 10, 40, 80), row("GET /gone", 5, 0, 1.0, 5, 5, 5))
RUN = summary(row("GET /a", 900, 30, 85.0, 10.5, 45, 87), row("GET /new", 7, 0, 1.0, 5, 5, 5))


def test_compare_flags_each_figure_against_its_tolerance() -> None:
    c = compare("run", RUN, "base", BASE)
    a = c.endpoint("GET /a")
    assert a is not None
    flags = {f.figure: f.regression for f in a.figures}
    # median +5 % (within 10 %), p95 +12.5 %, p99 +8.75 %, rps -15 %, errors 1 % -> 3.3 %
    assert flags == {
        "requests": False,
        "rps": True,
        "error_rate": True,
        "median": False,
        "p95": True,
        "p99": False,
    }
    assert a.figure("p95").delta == 5
    assert a.figure("p95").delta_pct == pytest.approx(12.5)
    assert c.only_in_run == ("GET /new",)
    assert c.only_in_baseline == ("GET /gone",)
    assert c.regression


def test_tolerances_are_the_callers_to_set() -> None:
    loose = lm.Tolerances(latency_pct=50, rps_pct=50, error_rate_abs=0.5)
    c = compare("run", RUN, "base", BASE, loose)
    assert not c.regression


def test_comparing_a_run_without_summary_is_a_validation_error() -> None:
    with pytest.raises(lm.ValidationError):
        compare("run", None, "base", BASE)


def test_comparisons_round_trip_as_json() -> None:
    c = compare("run", RUN, "base", BASE)
    assert lm.from_dict(lm.Comparison, lm.to_dict(c)) == c


def test_summary_exports_to_csv_and_dataframe_with_the_same_columns() -> None:
    text = lm.to_csv(BASE)
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["endpoint"] for r in table] == ["GET /a", "GET /gone", "Aggregated"]
    assert float(table[0]["p95"]) == 40
    frame = lm.to_dataframe(BASE)
    assert list(frame.columns) == list(table[0])
    assert frame.loc[0, "requests"] == 1000


def test_series_trend_and_comparison_export() -> None:
    with lm.connect("memory://") as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        storage.metrics.add_many(
            make_snapshot(run.id, T0 + timedelta(seconds=s)) for s in range(10)
        )
        series = storage.metrics.series(run.id, 5)
    assert len(lm.to_dataframe(series)) == 5
    assert lm.to_csv(series).splitlines()[0].startswith("start,end,samples,user_count_min")
    comparison_rows = lm.to_dataframe(compare("run", RUN, "base", BASE))
    assert set(comparison_rows["figure"]) == {
        "requests",
        "rps",
        "error_rate",
        "median",
        "p95",
        "p99",
    }
    assert lm.to_csv([]) == ""


def test_trend_points_follow_start_order_and_carry_the_verdict() -> None:
    test = make_load_test()
    verdict = lm.Verdict.of([])
    late = make_run(
        test, status=RunStatus.FINISHED, at=T0 + timedelta(hours=1), summary=make_summary()
    )
    early = make_run(
        test, status=RunStatus.FINISHED, at=T0, summary=make_summary(), verdict=verdict
    )
    failed = make_run(test, status=RunStatus.FAILED, at=T0)  # never started: no point
    points = trend_points([late, failed, early])
    assert [p.run_id for p in points] == [early.id, late.id]
    assert points[0].verdict is lm.Outcome.PASSED
    assert points[0].p95 == 38
    assert lm.to_csv(points).splitlines()[1].endswith(",passed")
    assert "passed" in trend_html(points)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plots_are_real_pngs(tmp_path: Path) -> None:
    with lm.connect("memory://") as storage:
        test = storage.load_tests.add(make_load_test())
        run = storage.runs.add(make_run(test, status=RunStatus.FINISHED))
        storage.metrics.add_many(
            make_snapshot(run.id, T0 + timedelta(seconds=s), user_count=s, current_rps=3.0 * s)
            for s in range(30)
        )
        series = storage.metrics.series(run.id, 10)
    lm.save_png(lm.plot_run(series, title="run"), tmp_path / "run.png")
    lm.save_png(lm.plot_comparison(compare("r", RUN, "b", BASE)), tmp_path / "cmp.png")
    assert png_size(tmp_path / "run.png") == (900, 650)
    assert png_size(tmp_path / "cmp.png") == (900, 450)
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_notebook_displays_are_html() -> None:
    test = make_load_test(thresholds=(lm.Threshold("p95", "<", 100),))
    run = make_run(test, status=RunStatus.FINISHED, summary=make_summary())
    run = attrs.evolve(run, verdict=lm.Verdict.of([]))
    assert "Load test: API Load Test" in test._repr_html_()
    assert "p95 &lt; 100" in test._repr_html_()
    html = run._repr_html_()
    assert "<table" in html
    assert "Aggregated" in html
    assert "verdict: passed" in html
    assert "GET /a" in compare("r", RUN, "b", BASE)._repr_html_()


def test_the_report_is_self_contained_and_holds_the_figures(tmp_path: Path) -> None:
    test = make_load_test()
    run = make_run(
        test, status=RunStatus.FINISHED, summary=summary(row("GET /a", 12345, 67, 9.5, 10, 40, 80))
    )
    series = [
        lm.SeriesBucket(T0, T0 + timedelta(seconds=1), 1, *(lm.Stat(1.0, 2.0, 3.0),) * 5),
        lm.SeriesBucket(
            T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), 1, *(lm.Stat(2.0, 3.0, 4.0),) * 5
        ),
    ]
    html = lm.render_report(run, test, series)
    assert html.startswith("<!DOCTYPE html>")
    assert ">12,345</td>" in html
    assert ">67</td>" in html
    assert "new uPlot(" in html  # the chart library is inlined ...
    for fetching in ("src=", "<link", "@import", "url("):  # ... and nothing is fetched
        assert fetching not in html
    charts = json.loads(html.split("LMCharts.draw(document.getElementById('charts'), ")[1]
                        .split(");</script>")[0])  # fmt: skip
    assert [c["id"] for c in charts] == ["load", "latency"]
    assert charts[0]["series"][0]["values"] == [2.0, 3.0]  # the buckets' averages


def test_the_deprecated_write_report_order_still_writes_with_a_warning(tmp_path: Path) -> None:
    test = make_load_test()
    run = make_run(
        test, status=RunStatus.FINISHED, summary=summary(row("GET /a", 5, 0, 1, 1, 1, 1))
    )
    with pytest.warns(DeprecationWarning, match=r"write_report\(orch, run_id, path\)"):
        path = lm.write_report(tmp_path / "old.html", run, test, [])
    assert ">5</td>" in path.read_text()
