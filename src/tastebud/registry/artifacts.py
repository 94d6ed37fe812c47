"""Pickle-free, checksummed artifact directories: text files (JSON, LightGBM text models, the
model card) plus ``params.npz`` (``allow_pickle=False``) and a ``manifest.json`` holding each
file's sha256. Written atomically; every file verified on every load."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tastebud.errors import ArtifactInvalid, NotFound
from tastebud.files import open_private, private_dir, write_private

__all__ = ["artifact_id", "sha256_file", "verify_artifact", "write_artifact"]


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_artifact(directory: Path, texts: dict[str, str], arrays: dict[str, NDArray[Any]]) -> str:
    """Write text files and ``params.npz`` (``allow_pickle=False``) plus ``manifest.json`` (sha256
    per file) atomically: into a temporary sibling renamed into place, so a crash never leaves
    a half-written artifact where a reader looks. Returns the artifact id (first 16 hex digits
    of the manifest's sha256)."""
    private_dir(directory.parent)
    # mkdtemp: a 0700 directory; every file 0600 (vocabularies hold user pseudonyms).
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        for name, text in texts.items():
            write_private(tmp / name, text)
        with open_private(tmp / "params.npz") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
        manifest = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        write_private(tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        if directory.exists():
            old = directory.with_name(f".{directory.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return artifact_id(directory)


def artifact_id(directory: Path) -> str:
    """An artifact's id: the first 16 hex digits of its manifest's sha256 (content-addressed:
    any change to any file changes it)."""
    return sha256_file(directory / "manifest.json")[:16]


def verify_artifact(
    directory: Path, kind: str, command: str, required: tuple[str, ...] = ()
) -> dict[str, str]:
    """Check every file of an artifact against its manifest; returns the manifest.

    Raises:
        NotFound: no artifact in ``directory`` (the message names ``command``).
        ArtifactInvalid: a file is missing or was changed since it was written.
    """
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise NotFound(f"no {kind} artifact in {directory}; run `{command}` first")
    manifest: dict[str, str] = json.loads(manifest_path.read_text())
    for name in (*required, *(n for n in manifest if n not in required)):
        path = directory / name
        if not path.is_file():
            raise ArtifactInvalid(f"{kind} artifact {directory} is missing {name}")
        if sha256_file(path) != manifest.get(name):
            raise ArtifactInvalid(
                f"{kind} artifact {directory}: {name} does not match its recorded sha256 "
                "(changed after it was written); refusing to load it"
            )
    return manifest
