"""How to type ``tastebud`` again from here: every command the CLI suggests is spelled the way
this program actually runs (``.venv/bin/tastebud`` after ``make run``, ``tastebud`` when on
``PATH``), so that hints work as printed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["activation_note", "hint", "prog"]


def _shown(path: str) -> str:
    """``path`` as typed from the current directory: relative below it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return shlex.quote(relative if not relative.startswith("..") else absolute)


def prog() -> str:
    """How to type this program again from the current directory: ``tastebud`` when that name
    on ``PATH`` is this program, else its path (``.venv/bin/tastebud`` after ``make run``, whose
    virtual environment is not activated).

    Every command the CLI suggests goes through this, so that hints work as printed.
    """
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0.endswith("__main__.py") or not argv0:  # python -m tastebud.cli
        script = Path(sys.executable).with_name("tastebud")
        if not script.exists():
            return f"{_shown(sys.executable)} -m tastebud.cli"
        argv0 = str(script)
    found = shutil.which("tastebud")
    try:
        if found is not None and os.path.samefile(found, argv0):
            return "tastebud"
    except OSError:
        pass
    return _shown(argv0)


_HINT = re.compile(r"`tastebud(?= |`)")


def hint(text: str) -> str:
    """``text`` with each suggested command (```tastebud ...``` in backticks) spelled the way
    :func:`prog` says this program runs here; messages of the domain code name ``tastebud``."""
    name = prog()
    return text if name == "tastebud" else _HINT.sub(lambda _m: f"`{name}", text)


def activation_note() -> str | None:
    """How to type plain ``tastebud``, when it is not on ``PATH`` but sits in a virtualenv."""
    name = prog()
    if name == "tastebud" or not name.endswith("/bin/tastebud"):
        return None
    return (
        f"(or activate the environment first, `source {name.removesuffix('/tastebud')}"
        "/activate`, then type `tastebud ...`)"
    )
