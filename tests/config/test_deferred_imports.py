"""config.deferred_imports: a module bound to a stand-in is imported at its first use, once, and
is then the module an import gives (the web process defers requests, urllib3 and PyYAML this way:
tests/config/test_web_imports.py)."""

import importlib
import importlib.util
import sys
import threading

import pytest

from config.deferred_imports import imports_defer


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package ``deferred_probe`` (with a submodule) that counts how often it is run."""
    root = tmp_path / "deferred_probe"
    root.mkdir()
    (root / "__init__.py").write_text(
        "import builtins, time\n"
        "builtins.deferred_probe_runs = getattr(builtins, 'deferred_probe_runs', 0) + 1\n"
        "time.sleep(0.05)  # a slow import, as requests' is: other threads ask meanwhile\n"
        "class Error(Exception):\n"
        "    pass\n"
        "VALUE = 42\n"
    )
    (root / "sub.py").write_text("from . import VALUE\nDOUBLE = VALUE * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    monkeypatch.setattr(builtins, "deferred_probe_runs", 0, raising=False)
    yield "deferred_probe"
    for name in ("deferred_probe", "deferred_probe.sub"):
        sys.modules.pop(name, None)


def test_a_deferred_module_runs_at_its_first_attribute_only(package):
    import builtins

    assert imports_defer(package) == [package]
    import deferred_probe

    assert builtins.deferred_probe_runs == 0
    assert importlib.util.find_spec(package).origin.endswith("__init__.py")
    assert deferred_probe.VALUE == 42
    assert builtins.deferred_probe_runs == 1
    real = sys.modules[package]
    assert real is not deferred_probe and real.VALUE == 42
    import deferred_probe as again

    assert again is real
    assert deferred_probe.Error is real.Error  # the stand-in keeps answering from the module
    from deferred_probe.sub import DOUBLE

    assert DOUBLE == 84
    assert builtins.deferred_probe_runs == 1


def test_threads_that_first_use_a_deferred_module_at_once_all_get_it_whole(package):
    import builtins

    imports_defer(package)
    import deferred_probe

    start, answers = threading.Barrier(8), []

    def use():
        start.wait()
        answers.append((deferred_probe.VALUE, deferred_probe.Error.__name__))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [(42, "Error")] * 8
    assert builtins.deferred_probe_runs == 1


def test_only_installed_modules_not_yet_imported_are_deferred(package):
    import json

    assert imports_defer("json", "no_such_module_anywhere", package) == [package]
    assert sys.modules["json"] is json
    assert "no_such_module_anywhere" not in sys.modules
    with pytest.raises(ImportError):
        import no_such_module_anywhere  # noqa: F401
