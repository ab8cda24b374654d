"""Import hygiene: which parts of the package import fairseq, and that the package's own imports
form no cycle (docs/architecture.md, "What imports fairseq").

The conflict engine, data preparation, the checkpoint records and the recipe's helpers are
plain PyTorch/Python: a report, a plot or a data-preparation subprocess must not pay fairseq's
import (seconds, and ~600 MB of peak RSS). All groups are imported module by module in one fresh
interpreter, and the first module that brings in a forbidden package is named.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fairseq_mgcm"
FORBIDDEN = ("fairseq", "fairseq_cli", "simuleval", "pydub")

# Modules under the checked folders that are fairseq's by design.
NEEDS_FAIRSEQ = {
    "fairseq_mgcm.data.multitask_dataset",  # a fairseq dataset
    "fairseq_mgcm.checkpoints.atomic_copies",  # patches fairseq.checkpoint_utils
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules_under(*folders: str) -> list[str]:
    names = {_module_name(path) for folder in folders for path in (PACKAGE / folder).rglob("*.py")}
    return sorted(names - NEEDS_FAIRSEQ)


GROUPS = {
    "package": sorted({_module_name(path) for path in PACKAGE.glob("*.py")}  # and its files
                      | set(_modules_under("checkpoints"))),
    "conflict": _modules_under("conflict"),  # the engine and its telemetry
    "data": _modules_under("data"),  # corpus maker and MuST-C preparation
    "recipe": _modules_under("recipe"),  # results, comparison, statistics, plots, memory
    "live": _modules_under("live"),  # the demo server: simulstream, not fairseq/SimulEval
    "longform": _modules_under("longform"),  # talks, re-segmentation, StreamLAAL, its report
    "agent pieces": [f"fairseq_mgcm.agents.{name}" for name in (
        "online_fbank", "resample", "streaming_encoder", "read_step", "words")],
}

_IMPORT_EACH = """
import importlib, json, sys
forbidden = {forbidden!r}
for name in {modules!r}:
    importlib.import_module(name)
    loaded = sorted(m for m in forbidden if m in sys.modules)
    if loaded:
        print(json.dumps({{"module": name, "loaded": loaded}}))
        sys.exit(0)
print(json.dumps(None))
"""


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MGCM_VERBOSE", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _last_line(done: subprocess.CompletedProcess) -> object:
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_group_imports_without_fairseq() -> None:
    """All groups, module by module, in one fresh interpreter (each interpreter start pays
    torch's import): none of the forbidden packages is loaded after any module, so the first
    module that brings one in is the one named."""
    for group, modules in GROUPS.items():
        assert len(modules) >= 2, (group, modules)  # the discovery found the folder
    every = [name for group in sorted(GROUPS) for name in GROUPS[group]]
    culprit = _last_line(_python(_IMPORT_EACH.format(forbidden=FORBIDDEN, modules=every)))
    assert culprit is None, f"importing {culprit['module']} imports {culprit['loaded']}"


_REGISTERED = """
import json
import fairseq.checkpoint_utils, fairseq.criterions, fairseq.models, fairseq.optim, fairseq.tasks
print(json.dumps([
    "speech_to_text_multitask" in fairseq.tasks.TASK_REGISTRY,
    "waitk_s2t_transformer_tiny" in fairseq.models.ARCH_MODEL_REGISTRY,
    "st_ctc_asr" in fairseq.criterions.CRITERION_REGISTRY,
    "conflict_aware" in fairseq.optim.OPTIMIZER_REGISTRY,
    type(fairseq.checkpoint_utils.PathManager).__name__ != "module"
    and fairseq.checkpoint_utils.PathManager.__name__ == "_AtomicCopyPathManager",
]))
"""

_LOADERS = {
    # what fairseq-train/-generate do with --user-dir: fairseq first, then the plugin
    "user-dir": "import argparse, fairseq.utils\n"
                f"fairseq.utils.import_user_module(argparse.Namespace(user_dir={str(PACKAGE)!r}))",
    # a program that imports the package (or its engine) before fairseq
    "register": "import fairseq_mgcm.conflict, fairseq_mgcm\nfairseq_mgcm.register()",
}


@pytest.mark.parametrize("loader", sorted(_LOADERS))
def test_plugin_registers_task_model_criterion_optimizer_and_patches(loader: str) -> None:
    done = _python(_LOADERS[loader] + "\n" + _REGISTERED)
    assert _last_line(done) == [True] * 5
    if loader == "register":  # it quiets fairseq before importing it (fairseq_mgcm/console.py)
        assert done.stderr == ""


# ---------------------------------------------------------------------------------------------
# no import cycles
# ---------------------------------------------------------------------------------------------


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Package modules ``path`` imports anywhere (top level, functions, TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:  # `from a.b import c`: the module a.b.c if there is one, or a.b
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports, for the package at ``root``. A package's
    ``__init__`` importing its own submodules (re-exports) is left out: Python runs those while
    the package is being set up, and they are not a dependency between rooms."""
    base = root.parent
    paths = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        paths[".".join(parts)] = path
    graph = {}
    for name, path in paths.items():
        edges = _imports(path, name, set(paths))
        if path.name == "__init__.py":
            edges = {e for e in edges if not e.startswith(name + ".")}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert "fairseq_mgcm.conflict._rule" in graph["fairseq_mgcm.conflict._apply"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_cycle_check_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")  # a re-export: no edge
    (pkg / "a.py").write_text("from pkg.sub import b\nA = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import A\n")
    graph = import_graph(pkg)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.sub.b"}, "pkg.sub": set(),
                     "pkg.sub.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("import pkg.sub\n")
    assert find_cycle(import_graph(pkg)) is None
