"""Structure rules from STYLE.md: one-way imports, and ``__all__`` lists exactly the public names
(sorted)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import ParamSpec, TypeVar, TypeVarTuple

import pytest

import tastebud

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert f"Contracts: {len(declared['contracts'])} kept, 0 broken" in r.stdout


def modules() -> list[str]:
    """Every module of the package, private ones too (their ``__all__`` is what the package
    uses of them), but not the migrations or ``__main__``."""
    names = ["tastebud"]
    for info in pkgutil.walk_packages(tastebud.__path__, "tastebud."):
        if ".migrations" in info.name or info.name.endswith(".__main__"):
            continue
        names.append(info.name)
    return names


def _bound(body: list[ast.stmt], defined: set[str], imported: dict[str, str]) -> None:
    """Top-level names: ``defined`` by def, class or assignment; ``imported`` (name: the
    module it comes from, absolute). Names bound under ``if``/``try``/``with`` count too."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                defined |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imported[alias.asname or alias.name] = "." * node.level + (node.module or "")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imported[alias.asname or alias.name.split(".")[0]] = alias.name
        for block in ("body", "orelse", "finalbody"):
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                _bound(getattr(node, block, []), defined, imported)
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                _bound(handler.body, defined, imported)


def public_names(module: ModuleType, source: str) -> tuple[set[str], set[str]]:
    """What ``module.__all__`` must list, and what it may list besides (``source``: its code).

    Must: every public name (no leading ``_``) the module defines, except type variables
    (typing plumbing, as in the standard library); a package's ``__init__`` must also list the
    public names it imports from its own submodules (its re-exports). May (a package only):
    names it imports from elsewhere in Tastebud (explicit re-exports). Nothing else: not a name
    a plain module imports, nor a third-party name.
    """
    defined: set[str] = set()
    imported: dict[str, str] = {}
    _bound(ast.parse(source).body, defined, imported)

    def public(name: str) -> bool:
        value = getattr(module, name, None)
        return (
            not name.startswith("_")
            and hasattr(module, name)
            and not isinstance(value, (ModuleType, TypeVar, ParamSpec, TypeVarTuple))
        )

    must = {n for n in defined if public(n)}
    may: set[str] = set()
    if hasattr(module, "__path__"):  # a package: its __init__
        own = (module.__name__ + ".", ".")
        for name, origin in imported.items():
            if not public(name) or name in defined:
                continue
            if origin.startswith(own):
                must.add(name)
            elif origin.startswith("tastebud"):
                may.add(name)
    return must, may


UNEXPORTED_PUBLIC: dict[str, set[str]] = {
    "tastebud.api.app": {"DESCRIPTION"},
    "tastebud.api.deps": {"get_services"},
    "tastebud.api.errors": {"status_for"},
    "tastebud.api.routes.items": {"CategoryQuery", "ItemIdPath"},
    "tastebud.api.routes.models": {"NamePath", "VersionPath"},
    "tastebud.api.routes.privacy": {"UserIdPath"},
    "tastebud.api.routes.recommendations": {"Short", "UserIdPath"},
    "tastebud.api.routes.users": {"AnonymousQuery", "UserIdPath"},
    "tastebud.cli.models": {"JsonOpt", "NameArg", "VersionArg"},
    "tastebud.cli.predictors": {
        "CalibrationOpt",
        "FoldsOpt",
        "IdOpt",
        "LabelOpt",
        "RateOpt",
        "TableOpt",
        "TargetOpt",
    },
    "tastebud.cli.rights": {"UserArg"},
    "tastebud.evaluation.protocol": {"MIN_INTERACTIONS", "TEST_FRACTION"},
    "tastebud.evaluation.tuning": {"TUNE_METRIC"},
    "tastebud.events.schema": {"Timestamp"},
    "tastebud.registry.recommender": {"FORMAT"},
    "tastebud.rights.erasure": {"Step"},
    "tastebud.serving.batch": {"Format"},
    "tastebud.serving.rank": {"RECENCY_HALF_LIFE_DAYS"},
    "tastebud.store.tables": {"BigId", "Json", "PSEUDONYM_LEN"},
    "tastebud.training.predictors": {"Fitter"},
    "tastebud.training.tabular": {"NUMERIC_SHARE"},
}
"""Public-looking names that are neither documented nor used outside their module: they should
be private (a leading ``_``), which their owners do (issue 16, point 7); until then they are not
exported. Names the public surface shows are exported instead: route handlers (their names are
the OpenAPI operation ids), request and response models (its schema names), CLI commands,
documented constants, and whatever another module imports. The test fails when an entry is
fixed, so that this list only shrinks."""

REEXPORTED_BY_A_MODULE: dict[str, set[str]] = {}
"""Names a plain module imports and lists in ``__all__`` (a re-export belongs in a package's
``__init__``); they stay until their importers import them from where they are defined."""


@pytest.mark.parametrize("name", modules())
def test_all_lists_exactly_the_public_names(name: str) -> None:
    """httpx's ``test_exported_members`` for every module: ``__all__`` is sorted and lists
    every public name the module defines (a package: and re-exports), and nothing else."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"
    assert module.__file__ is not None
    must, may = public_names(module, Path(module.__file__).read_text())
    waived = UNEXPORTED_PUBLIC.get(name, set())
    assert waived <= must - set(exported), (
        f"{name}: {sorted(waived - (must - set(exported)))} are fixed (private or exported): "
        "remove them from UNEXPORTED_PUBLIC"
    )
    missing = must - set(exported) - waived
    assert not missing, f"{name}.__all__ does not list {sorted(missing)} (or make them private)"
    moving = REEXPORTED_BY_A_MODULE.get(name, set())
    assert moving <= set(exported) - must - may, f"{name}: update REEXPORTED_BY_A_MODULE"
    dunders = {n for n in exported if n.startswith("__") and n.endswith("__")}  # __version__
    extra = set(exported) - must - may - moving - dunders
    assert not extra, f"{name}.__all__ lists {sorted(extra)}, which it neither defines nor owns"


def test_the_exported_members_rule_sees_what_it_should() -> None:
    """The rule above on a module with every kind of name (so a blind rule cannot pass)."""
    source = """
from __future__ import annotations
import os
from typing import TypeVar
from tastebud.ids import Vocabulary
from tastebud.fake.sub import Own
from .other import Relative, _Private
T = TypeVar("T")
LIMIT: int = 3
_hidden = 1
Alias = int | str
def helper() -> None: ...
class Thing: ...
if True:
    FLAG = 1
"""
    # The two imports of modules that do not exist are left out of what runs.
    lines = source.splitlines()
    runnable = "\n".join(x for x in lines if not x.startswith(("from tastebud.fake", "from .")))
    module = ModuleType("tastebud.fake")
    exec(compile(runnable, "fake.py", "exec"), module.__dict__)
    module.Own = module.Relative = module._Private = object()  # type: ignore[attr-defined]
    must, may = public_names(module, source)
    assert must == {"LIMIT", "Alias", "helper", "Thing", "FLAG"}
    assert may == set()  # a plain module re-exports nothing (os, TypeVar, Vocabulary, Own)
    module.__path__ = []  # now a package
    must, may = public_names(module, source)
    assert must == {"LIMIT", "Alias", "helper", "Thing", "FLAG", "Own", "Relative"}
    assert may == {"Vocabulary"}  # a package may re-export from elsewhere in Tastebud


def test_docs_architecture_matches_the_import_contracts() -> None:
    """docs/architecture.md is a promise: its table of layers is the layers contract, and every
    other contract is named there (issue 16, point 6)."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = config["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    declared = [{p.strip().removeprefix("tastebud.") for p in line.split("|")} for line in layers]
    section = page.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    documented = [{p.strip(" `\\") for p in row.split(" | ")[1].split("|")} for row in rows[1:]]
    assert documented == declared
    for contract in contracts:
        if contract["type"] == "layers":
            continue
        title = contract["name"].split(":")[0]
        assert f"**{title}.**" in page, f"docs/architecture.md does not describe {title!r}"
