"""Files that hold personal data are created readable by their owner only.

Exports, batch lists, model artifacts (their vocabularies hold pseudonyms), reports, key files
and the SQLite database are all written through these helpers: files ``0600``, directories
``0700``, whatever the process's umask. A file is created with its final mode (never ``0644``
first and narrowed later), and an existing file is narrowed before it is written.

Example::

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out" / "export.json"
    >>> _ = private_dir(p.parent)
    >>> write_private(p, b"{}")
    >>> oct(p.stat().st_mode & 0o777), oct(p.parent.stat().st_mode & 0o777)
    ('0o600', '0o700')
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any, Literal, overload

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "narrow",
    "open_private",
    "private_dir",
    "write_private",
]

FILE_MODE = 0o600
"""Mode of every file Tastebud writes: read and write for the owner only."""
DIR_MODE = 0o700
"""Mode of every directory Tastebud creates."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as ``0700`` directories; an existing directory is
    left as it is (it may be a shared output folder the user chose). Returns ``path``."""
    missing = []
    for parent in (path, *path.parents):
        if parent.exists():
            break
        missing.append(parent)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    for created in missing:  # mkdir's mode is filtered by the umask: set it exactly
        os.chmod(created, DIR_MODE)
    return path


@overload
def open_private(path: Path, mode: Literal["wb", "ab"] = "wb") -> IO[bytes]: ...
@overload
def open_private(path: Path, mode: Literal["w", "a"], encoding: str = "utf-8") -> IO[str]: ...
def open_private(path: Path, mode: str = "wb", encoding: str = "utf-8") -> IO[Any]:
    """Open ``path`` for writing (``w``/``wb`` truncate, ``a``/``ab`` append) as a ``0600``
    file, created with that mode; an existing file is narrowed to ``0600`` first."""
    if mode not in ("w", "wb", "a", "ab"):
        raise ValueError(f"open_private writes only (w, wb, a, ab), not {mode!r}")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing, wider file is narrowed before it is written
    except BaseException:
        os.close(fd)
        raise
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding=encoding)


def narrow(path: Path) -> None:
    """Make an existing file ``0600`` if it is readable by others (files an older version wrote
    more open)."""
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, FILE_MODE)


def write_private(path: Path, content: bytes | str, encoding: str = "utf-8") -> None:
    """Write ``content`` to ``path`` as a ``0600`` file (replacing what was there)."""
    data = content.encode(encoding) if isinstance(content, str) else content
    with open_private(path, "wb") as fh:
        fh.write(data)
