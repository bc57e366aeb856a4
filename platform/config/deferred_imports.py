"""Modules that libraries import when they load but use only on paths a web process seldom takes,
loaded at their first use instead.

django-oauth-toolkit imports ``requests`` (for remote token introspection, which the platform
does not use) and ``urllib3`` (to fetch a client's metadata document, CIMD, at an authorization
that names one) at module level, and DRF imports PyYAML whenever it is installed (for a YAML
OpenAPI document; drf-spectacular needs it for ``/api/schema``): about 5 MB of a web process's
resident memory, most of it never used (bench/web_memory.py). Without patching them: before
they load, each such name is bound in ``sys.modules`` to a stand-in, which their ``import``
statements then bind; the first attribute looked up on it imports the real module (which takes
the stand-in's place in ``sys.modules``) and answers from it.
"""

import importlib
import importlib.util
import sys
import threading
import types

_lock = threading.Lock()


class _Deferred(types.ModuleType):
    """A module's stand-in until its first attribute look-up."""

    def __getattr__(self, attribute: str):
        return getattr(_real(self), attribute)


def _real(stand_in: _Deferred) -> types.ModuleType:
    """The real module of ``stand_in``, imported at the first call. Two threads may ask at once:
    only one takes the stand-in out, and Python's import lock makes the other wait for the
    module to be whole."""
    name = stand_in.__name__
    with _lock:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
    return importlib.import_module(name)


def imports_defer(*names: str) -> list[str]:
    """Bind each of the top-level modules ``names`` that is installed and not imported yet to a
    stand-in that imports it at first use; the names it bound."""
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None:  # not installed: importing it must still fail
            continue
        stand_in = _Deferred(name)
        stand_in.__spec__ = spec  # importlib.util.find_spec(name) answers as before
        sys.modules[name] = stand_in
        deferred.append(name)
    return deferred
