"""The examples run as a user would run them, so they cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

pytestmark = pytest.mark.slow


def test_locust_client_example_prints_the_stats_table() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "locust_client.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "with 2 workers" in out
    table = out.split("endpoint", 1)[1]
    assert "GET /items" in table
    assert "Aggregated" in table


def test_the_notebook_runs_top_to_bottom() -> None:
    nbclient = pytest.importorskip(
        "nbclient", reason="needs the notebook extra: pip install -e '.[notebook]'"
    )
    nbformat = pytest.importorskip("nbformat", reason="needs the notebook extra")
    notebook = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("Run " in o.get("data", {}).get("text/html", "") for o in outputs)
    # wait(summary=True) shows the summary as HTML in Jupyter, not as text.
    html = [o.get("data", {}).get("text/html", "") for o in outputs]
    assert any("<h5>Criteria</h5>" in h and "(exit code " in h for h in html)


@pytest.mark.parametrize(("args", "code"), [([], 0), (["--slower"], 1)])
def test_the_ci_gate_exits_with_the_verdict(args: list[str], code: int) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "ci_gate.py"), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert "VERDICT: " + ("PASSED" if code == 0 else "FAILED") in done.stdout
    assert "CRITERIA" in done.stdout


def test_the_fastapi_mount_example_serves_both_apps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    import httpx

    monkeypatch.setenv("LOADMANAGER_DB", f"sqlite:///{tmp_path / 'mounted.db'}")
    spec = importlib.util.spec_from_file_location(
        "mount_in_fastapi", EXAMPLES / "mount_in_fastapi.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        import anyio

        async def calls() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=module.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                return [
                    await client.get("/health"),
                    await client.get("/loadtests/v1/load-tests"),
                    await client.get(
                        "/loadtests/v1/load-tests",
                        headers={"Authorization": "Bearer team-a-token"},
                    ),
                    await client.get("/dashboard/tests"),
                    await client.get("/login", follow_redirects=True),
                ]

        health, anonymous, listed, signed_out, dashboard = anyio.run(calls)
        assert health.json() == {"status": "ok"}
        assert anonymous.status_code == 401
        assert listed.json() == {"items": [], "nextCursor": None}
        assert signed_out.status_code == 401
        assert dashboard.status_code == 200
        assert "<h1>Load tests</h1>" in dashboard.text
    finally:
        module.orchestrator.close()
        module.storage.close()
