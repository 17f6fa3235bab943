"""What `import loadmanager` offers, and what it must not drag in."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

import loadmanager as lm


def test_all_is_sorted_and_complete() -> None:
    assert lm.__all__ == sorted(lm.__all__)
    for name in lm.__all__:  # lazy exports resolve too
        assert getattr(lm, name) is not None
    public = {n for n in dir(lm) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if type(getattr(lm, n)).__name__ == "module"}
    public_modules = {"http"}  # lm.http.create_app is part of the API
    assert set(lm.__all__) - {"__version__"} == (public - modules) | public_modules


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        lm.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_every_error_derives_from_the_root() -> None:
    errors = [getattr(lm, n) for n in lm.__all__ if n.endswith("Error") and n != "FieldError"]
    assert len(errors) >= 15
    assert all(issubclass(e, lm.LoadManagerError) for e in errors)
    assert issubclass(lm.NotFoundError, LookupError)
    assert issubclass(lm.ValidationError, ValueError)


def loaded_by_import(names: set[str]) -> list[str]:
    """Which of these top-level modules a fresh `import loadmanager` loads."""
    code = (
        "import sys, loadmanager\n"
        f"print(sorted({names!r} & {{m.split('.')[0] for m in sys.modules}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded: list[str] = ast.literal_eval(out.stdout.strip())
    return loaded


def test_import_loads_no_optional_dependency() -> None:
    heavy = {"pymongo", "bson", "locust", "gevent", "pandas", "matplotlib", "starlette"}
    assert loaded_by_import(heavy | {"sqlite3", "httpx", "tenacity"}) == []


def test_import_leaves_what_is_loaded_on_first_use_unloaded() -> None:
    """Each of these was measured in `import loadmanager`'s time and moved to first
    use (docs/performance.md, "Import time"); a top-level import brings it back."""
    first_use = {"cattrs", "uuid", "hashlib", "difflib", "html", "urllib", "pathlib"}
    assert loaded_by_import(first_use | {"json", "http", "socket", "logging"}) == []


def test_no_module_but_the_plugin_imports_locust() -> None:
    # The plugin is the one file that imports locust, and it is loaded by Locust
    # itself (-f), never by the library: importing locust would monkey-patch the
    # host process with gevent.
    code = (
        "import importlib, pkgutil, sys, loadmanager\n"
        "for m in pkgutil.walk_packages(loadmanager.__path__, 'loadmanager.'):\n"
        "    if not m.name.endswith('loadmanager_plugin'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted({'locust', 'gevent'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize(
    "url", ["postgres://x", "sqlite:/x.db", "nothing", "memory://x", "sqlite:///"]
)
def test_connect_refuses_unknown_urls_naming_the_accepted_forms(url: str) -> None:
    with pytest.raises(lm.ValidationError, match="accepted forms") as info:
        lm.connect(url)
    assert isinstance(info.value, ValueError)
    assert "sqlite:///relative/path.db" in str(info.value)
    assert "memory://" in str(info.value)
