"""The contract suite on the in-memory backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import loadmanager as lm
from loadmanager.repositories import Storage
from loadmanager.testing.contracts import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        with lm.connect("memory://") as storage:
            yield storage
