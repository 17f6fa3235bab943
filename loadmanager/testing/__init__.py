"""Public test helpers: a manual clock, a fake Locust master from captured answers,
model factories, hypothesis strategies and the repository contract suite that
every storage backend must pass.

A third-party backend proves itself with a few lines::

    from loadmanager.testing.contracts import StorageContract

    class TestMyBackend(StorageContract):
        @pytest.fixture
        def storage(self):
            with MyStorage(...) as s:
                yield s

``contracts`` and ``strategies`` import pytest and hypothesis, so they are not
imported here; this package itself needs neither.
"""

from .clock import ManualClock
from .factories import make_load_test, make_run, make_snapshot, make_spec, make_summary
from .fake_master import FakeLocustMaster

__all__ = [
    "FakeLocustMaster",
    "ManualClock",
    "make_load_test",
    "make_run",
    "make_snapshot",
    "make_spec",
    "make_summary",
]
