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
