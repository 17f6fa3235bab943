"""Developer sessions: `nox -s tests lint typecheck` (bench and docs on demand)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (real SQLite, MongoDB stand-in and Locust where needed)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (check and format) and the import-linter layer contracts."""
    session.install("-e", ".[test,lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[test,lint]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (Sphinx, MyST, Furo), warnings as errors."""
    session.install("-e", ".[docs,dashboard,mongo]")  # autodoc imports every backend
    session.run(
        "python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(default=False)
def notebook(session: nox.Session) -> None:
    """Execute examples/notebook.ipynb top to bottom, so it cannot rot."""
    session.install("-e", ".[test,notebook]")
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/test_examples.py",
        "-k",
        "notebook",
        "-p",
        "no:cacheprovider",
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: they print figures, they assert nothing."""
    session.install("-e", ".[test,fast]")  # the figures in docs/performance.md are with it
    for script in sorted(__import__("pathlib").Path("bench").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """Every hypothesis property at 10,000 examples (the `fuzz` profile)."""
    session.install("-e", ".[test]")
    session.run(
        "python", "-m", "pytest", "-m", "not slow", "-p", "no:cacheprovider",
        "tests/test_fuzz_entry_points.py", "tests/test_properties.py", "tests/test_grammar.py",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "fuzz"},
    )  # fmt: skip


@nox.session(default=False)
def races(session: nox.Session) -> None:
    """Delete racing start at 300 rounds per backend, and the other races at scale."""
    session.install("-e", ".[test]")
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "tests/test_delete_race.py",
        "tests/test_lease_race.py", *session.posargs,
        env={"LM_RACE_ROUNDS": "300"},
    )  # fmt: skip
