"""Start fairseq without loading scikit-learn and scipy.stats, which this plugin never uses.

``import fairseq`` imports every task and criterion module fairseq ships, and two of them load
scientific packages at import time for scores only their own validation computes:

- ``fairseq/tasks/audio_classification.py``: ``from sklearn import metrics as sklearn_metrics``
  (``roc_curve`` when validating that task);
- ``fairseq/criterions/sentence_prediction.py``: ``from sklearn.metrics import f1_score``,
  ``matthews_corrcoef`` and ``from scipy.stats import pearsonr, spearmanr`` (GLUE scores).

Loading them is about a third of the CPU time of ``import fairseq`` (docs/architecture.md,
"Start-up"), and every fairseq-train, fairseq-generate, SimulEval run and sweep pays it.

:func:`defer_unused_imports`, called before fairseq is imported, puts placeholder modules for
``sklearn``, ``sklearn.metrics`` and ``scipy.stats`` into ``sys.modules``, so those imports
succeed without loading anything; each name fairseq binds with ``from ... import`` gets a
stand-in that loads the real package when it is first called. Anything else that touches a
placeholder (reads an attribute, imports a submodule such as ``sklearn.cluster``) loads the real
package first: its placeholders leave ``sys.modules``, the real modules are imported, and the
caller gets the real attribute or module; a module that kept a placeholder (fairseq's
``sklearn_metrics``) reads through it to the real one from then on. The deferral changes when
the packages load, not what a caller gets (only setting an attribute on a kept placeholder
would not reach the real module). ``MGCM_EAGER_IMPORTS=1`` turns it off.

Importing this module imports only the standard library (not even ``importlib.abc``: the
finder and loader below are duck-typed, as the import system allows).
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["EAGER_ENV", "defer_unused_imports"]

EAGER_ENV = "MGCM_EAGER_IMPORTS"

# Each deferred package (by its top module): its placeholder modules, each with the names
# fairseq's modules bind at import with ``from MODULE import NAME`` (they get stand-ins).
DEFERRED: dict[str, dict[str, tuple[str, ...]]] = {
    "sklearn": {"sklearn": (), "sklearn.metrics": ("f1_score", "matthews_corrcoef")},
    "scipy.stats": {"scipy.stats": ("pearsonr", "spearmanr")},
}

_pending: set[str] = set()  # the packages whose placeholders are in sys.modules


def _package_of(name: str) -> str | None:
    """The deferred package ``name`` belongs to (itself or a submodule), else None."""
    return next((top for top in DEFERRED if name == top or name.startswith(top + ".")), None)


def _load(package: str) -> None:
    """Replace ``package``'s placeholders in ``sys.modules`` with the real modules (idempotent)."""
    if package not in _pending:
        return
    _pending.discard(package)
    if not _pending and _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in DEFERRED[package]:
        if isinstance(sys.modules.get(name), _Placeholder):
            del sys.modules[name]
    for name in DEFERRED[package]:
        importlib.import_module(name)


def _real(name: str) -> types.ModuleType:
    """The real module ``name`` (a deferred one), loading its package if needed."""
    package = _package_of(name)
    if package is not None:
        _load(package)
    return importlib.import_module(name)


def _stand_in(module: str, name: str) -> Callable[..., Any]:
    """A function that loads ``module`` and calls its ``name`` (bound in fairseq's namespaces)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = module
    call.__doc__ = f"Loads {module} (deferred by fairseq_mgcm.fast_start) and calls its {name}."
    return call


class _Placeholder(types.ModuleType):
    """Stands in ``sys.modules`` for a module not loaded yet; any use loads the real one."""

    def __getattr__(self, attribute: str) -> Any:
        package = _package_of(self.__name__)
        if package is not None and package in _pending and attribute in DEFERRED[package][
                self.__name__]:
            return _stand_in(self.__name__, attribute)
        if attribute == "__path__":  # not a package (a package's is set): from-imports ask
            raise AttributeError(f"module {self.__name__!r} has no attribute '__path__'")
        return getattr(_real(self.__name__), attribute)

    def __dir__(self) -> list[str]:
        return dir(_real(self.__name__))

    def __repr__(self) -> str:
        return f"<placeholder for module {self.__name__!r} (fairseq_mgcm.fast_start)>"


class _Handover:
    """Hands the import system a module the real package imported while it loaded (so that
    ``import sklearn.base`` does not run ``sklearn/base.py`` a second time), then gives the
    module back its own spec."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._spec  # the import system set the handover's spec on it


class _SubmoduleFinder:
    """First on ``sys.meta_path`` while placeholders are in place: the import of a submodule of
    a deferred package (``sklearn.cluster``) loads the real package first."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        package = _package_of(fullname)
        if package is None or package not in _pending:
            return None
        _load(package)
        module = sys.modules.get(fullname)
        if module is None:  # not imported by the package itself: the usual finders import it
            return None
        spec = importlib.machinery.ModuleSpec(fullname, cast("Loader", _Handover(module)),
                                              is_package=hasattr(module, "__path__"))
        module.__spec__ = spec  # the import system takes the spec of a module found in place
        return spec


_FINDER = _SubmoduleFinder()


def _find(name: str) -> importlib.machinery.ModuleSpec | None:
    """``name``'s spec, without importing it (nor, for a submodule, its parent)."""
    parent, _, _ = name.rpartition(".")
    if not parent:
        return importlib.util.find_spec(name)
    parent_spec = sys.modules[parent].__spec__ if parent in sys.modules else _find(parent)
    if parent_spec is None or parent_spec.submodule_search_locations is None:
        return None
    return importlib.machinery.PathFinder.find_spec(name, parent_spec.submodule_search_locations)


def _placeholder(spec: importlib.machinery.ModuleSpec) -> _Placeholder:
    module = _Placeholder(spec.name)
    # What introspection reads off every module (inspect.getmodule reads __file__,
    # importlib.util.find_spec __spec__), and __path__ for the import of a submodule.
    module.__spec__, module.__loader__ = spec, spec.loader
    module.__file__ = spec.origin
    module.__package__ = spec.parent
    if spec.submodule_search_locations is not None:
        module.__path__ = list(spec.submodule_search_locations)
    return module


def defer_unused_imports() -> list[str]:
    """Put placeholders for the packages in :data:`DEFERRED` into ``sys.modules`` (see the
    module docstring). Call it before fairseq is imported; a package already imported (or
    deferred, or not installed) is left alone, and ``MGCM_EAGER_IMPORTS=1`` defers nothing.
    Returns the packages deferred by this call."""
    if os.environ.get(EAGER_ENV, "") not in ("", "0"):
        return []
    deferred = []
    for package, modules in DEFERRED.items():
        if package in _pending or any(name in sys.modules for name in modules):
            continue
        specs = [_find(name) for name in modules]
        if any(spec is None for spec in specs):
            continue
        placeholders = {spec.name: _placeholder(spec) for spec in specs if spec is not None}
        for name, module in placeholders.items():
            parent, _, child = name.rpartition(".")
            if parent in placeholders:  # what the import system sets on a parent package
                setattr(placeholders[parent], child, module)
        sys.modules.update(placeholders)
        _pending.add(package)
        deferred.append(package)
    if _pending and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return deferred
