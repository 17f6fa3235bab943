"""Shared test configuration: hypothesis profiles and storage fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The contract suites live in the package; let pytest explain their failures.
pytest.register_assert_rewrite("loadmanager.testing.contracts")

# "ci" runs the >= 1,000-example properties the issues ask for; "dev" keeps the
# edit-test loop quick. CI sets HYPOTHESIS_PROFILE=ci.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=50, deadline=None)
# "fuzz" is `nox -s fuzz`: every property at 10,000 examples.
settings.register_profile(
    "fuzz",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def mongo_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB server URI: MONGODB_URI, or nx-27017 started for this session."""
    from mongo_server import mongo_base_uri

    with mongo_base_uri(Path(tmp_path_factory.mktemp("mongo"))) as uri:
        yield uri


@pytest.fixture
def mongo_url(mongo_base: str) -> Iterator[str]:
    """A URL naming a MongoDB database of its own, dropped afterwards."""
    import pymongo
    from mongo_server import database_uri, fresh_database_name

    name = fresh_database_name()
    yield database_uri(mongo_base, name)
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_base)
    try:
        client.drop_database(name)
    finally:
        client.close()


@pytest.fixture(params=["memory", "sqlite", "mongodb"])
def each_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A fresh storage on each backend in turn: memory, a SQLite file, MongoDB."""
    import loadmanager as lm

    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lm.db'}"
    else:
        url = request.getfixturevalue("mongo_url")
    with lm.connect(url) as storage:
        yield storage
