"""Structure rules from STYLE.md: one-way imports, sorted and complete ``__all__``."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tastebud

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 4 kept, 0 broken" in r.stdout


def public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(tastebud.__path__, "tastebud."):
        if ".migrations" in info.name or any(p.startswith("_") for p in info.name.split(".")[1:]):
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", public_modules())
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"
