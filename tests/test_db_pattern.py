"""One way to reach the database (issue 16, point 6; docs/architecture.md): every table has one
owner, listed in the owners table of docs/architecture.md, and only its owner queries it, save
for the exceptions that page documents. A query written in the wrong place fails here."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from tastebud.store.tables import metadata

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tastebud"
DOC = ROOT / "docs" / "architecture.md"
SECTION = "## One way to reach the database"
TABLES = frozenset(metadata.tables)

EXCEPTIONS: dict[str, frozenset[str]] = {
    # Rights reach every table that holds personal data (erasure, export, the report).
    "tastebud.rights": TABLES,
    # Data protection on the stored events and attributes, in place.
    "tastebud.events.retention": frozenset({"events"}),
    "tastebud.events.rotation": frozenset({"events", "users"}),
    # Read-only bulk loaders of training data.
    "tastebud.pipeline.load": frozenset({"events"}),
    "tastebud.evaluation.data": frozenset({"users"}),
    "tastebud.training.labels": frozenset({"events"}),
    "tastebud.training.coldstart": frozenset({"events"}),
    "tastebud.features.build": frozenset({"items"}),
    "tastebud.experiments.outcomes": frozenset({"events"}),
}
"""The documented exceptions (docs/architecture.md): module or package -> the tables it may
query besides its own."""

PENDING: dict[str, frozenset[str]] = {}
"""Queries still outside their owner, to move behind the owner's functions (the newest feature
snapshot, read through ``features``). The test fails when one is fixed, so that this list only
shrinks."""

# SQL text: a table named after a keyword that introduces one. Upper-case keywords only, as the
# code writes them; prose says "from events" in lower case.
_SQL_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_][a-z0-9_]*)")
_TABLES_MODULE = "tastebud.store.tables"


def section() -> str:
    """The "One way to reach the database" section of docs/architecture.md."""
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def owners() -> list[tuple[list[str], str]]:
    """The owners table: (the tables of a row, the owner package of that row)."""
    rows = []
    for line in section().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        owner = re.match(r"`([a-z_.]+)`", cells[2])
        assert owner is not None, f"no owner module in {line!r}"
        rows.append((re.findall(r"`([a-z_]+)`", cells[0]), owner.group(1)))
    return rows


def table_references(source: str) -> set[str]:
    """The tables a module's code queries: attributes of the imported tables module
    (``t.items``), tables imported from it by name, and tables named in SQL text (docstrings
    and other bare strings are documentation, not SQL)."""
    tree = ast.parse(source)
    modules: set[str] = set()  # names bound to tastebud.store.tables
    direct: dict[str, str] = {}  # name bound -> table, for tables imported from it by name
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "tastebud.store":
            modules |= {a.asname or a.name for a in node.names if a.name == "tables"}
        elif isinstance(node, ast.ImportFrom) and node.module == _TABLES_MODULE:
            direct |= {a.asname or a.name: a.name for a in node.names if a.name in TABLES}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == _TABLES_MODULE and a.asname}
    prose = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in TABLES:
            owner = ast.unparse(node.value)
            if owner in modules or owner == _TABLES_MODULE:
                found.add(node.attr)
        elif isinstance(node, ast.Name) and node.id in direct:
            found.add(direct[node.id])
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose
        ):
            found |= {m for m in _SQL_TABLE.findall(node.value) if m in TABLES}
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def references() -> dict[str, set[str]]:
    """Module -> the tables it queries, over the package (not the table declarations or the
    migrations, which create them)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        name = module_name(path)
        if name == _TABLES_MODULE or ".migrations" in name:
            continue
        found = table_references(path.read_text())
        if found:
            out[name] = found
    return out


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_every_table_has_exactly_one_documented_owner() -> None:
    rows = owners()
    listed = [table for tables, _ in rows for table in tables]
    assert sorted(listed) == sorted(set(listed)), "a table is listed twice"
    assert set(listed) == TABLES, (
        f"not in the owners table: {sorted(TABLES - set(listed))}; "
        f"not tables: {sorted(set(listed) - TABLES)}"
    )
    for _, owner in rows:
        assert importlib.util.find_spec(f"tastebud.{owner}") is not None, owner


def test_only_the_owner_or_a_documented_exception_queries_a_table() -> None:
    owner_of = {table: f"tastebud.{owner}" for tables, owner in owners() for table in tables}
    wrong: dict[str, set[str]] = {}
    for module, tables in references().items():
        allowed = {t for t in tables if within(module, owner_of[t])}
        for place, excepted in (EXCEPTIONS | PENDING).items():
            if within(module, place):
                allowed |= tables & excepted
        if tables - allowed:
            wrong[module] = tables - allowed
    assert not wrong, (
        f"queries outside their owner: {wrong}. Call the owner's objects (docs/architecture.md, "
        "'One way to reach the database'), or document a new exception there and here."
    )


def test_the_exceptions_are_documented_and_still_needed() -> None:
    text = section()
    found = references()
    for place, tables in EXCEPTIONS.items():
        assert f"`{place.removeprefix('tastebud.')}`" in text, f"{place} is not documented"
        used = set().union(*(t for m, t in found.items() if within(m, place)))
        assert used, f"{place} queries no table any more: remove the exception"
        assert used <= tables or tables == TABLES, place
    for place, tables in PENDING.items():
        assert f"`{place.removeprefix('tastebud.')}`" in text, f"{place} is not documented"
        assert found.get(place, set()) & tables, f"{place} is fixed: remove it from PENDING"


def test_the_reference_finder_sees_what_it_should() -> None:
    """The finder on a module with every kind of reference (so a blind finder cannot pass)."""
    source = '''
"""Reads FROM events (a docstring: prose, not SQL)."""
from tastebud.store import tables as t
from tastebud.store.tables import users as u, metadata
import tastebud.store.tables as tb

def f(conn, ids):
    """Nothing FROM job_runs here either."""
    conn.execute(select(t.items))
    conn.execute(select(u))
    conn.execute(tb.api_keys.insert())
    conn.exec_driver_sql(f"SELECT x FROM consents WHERE id IN ({ids})")
    conn.exec_driver_sql("DELETE FROM tombstones")
    conn.exec_driver_sql("INSERT INTO privacy_log VALUES (1)")
    conn.exec_driver_sql("UPDATE model_versions SET a = 1")
    "a bare string: FROM feature_values"
    note = "taken from events, in prose"
    other.items, other.users  # attributes of something else
'''
    assert table_references(source) == {
        "items",
        "users",
        "api_keys",
        "consents",
        "tombstones",
        "privacy_log",
        "model_versions",
    }


@pytest.mark.parametrize("module", ["tastebud.catalog.items", "tastebud.privacy.consent_log"])
def test_the_finder_sees_the_owners_own_queries(module: str) -> None:
    """The owners' modules are found querying their tables (the rule is not vacuous)."""
    assert references()[module]
