"""``tastebud recommend``: batch personalization, every user's top ``k`` written to a file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from tastebud.cli import DataDirOpt, _progress, _services, _settings, app, out
from tastebud.errors import InvalidInput, ModelNotFound

__all__ = ["recommend_cmd"]


def _read_keys(path: Path) -> list[str]:
    """One pseudonym per line; blank lines are ignored."""
    with path.open(encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


@app.command("recommend")
def recommend_cmd(
    out_file: Annotated[
        Path,
        typer.Option(
            "--out",
            help="File to write; .ndjson or .jsonl (one JSON object per user) or .parquet "
            "(one row per user and rank). Replaced atomically.",
            dir_okay=False,
        ),
    ],
    all_users: Annotated[
        bool, typer.Option("--all", help="Every user of the model (removed users skipped).")
    ] = False,
    user_keys: Annotated[
        Path | None,
        typer.Option(
            "--user-keys",
            help="Only these users: a file with one pseudonym per line (unknown ones skipped).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Items per user.")] = 10,
    model_name: Annotated[str, typer.Option(help="Registered recommender.")] = "recommendations",
    alias: Annotated[
        str, typer.Option(help="Version to use: production, staging or candidate.")
    ] = "production",
    data_dir: DataDirOpt = None,
) -> None:
    """Write every user's top K recommendations (--all) to a file, with a progress bar;
    each user's training items are excluded, as when serving.

    Users are keyed by **pseudonym** (`user_key`), the keyed hash Tastebud stores instead of a
    user id: raw ids are never stored, so they cannot be written. To join the file to your
    users, compute each user's pseudonym with the deployment's TASTEBUD_PSEUDONYM_KEY.
    Removed users (consent withdrawn or erased: `~removed-N` slots) are skipped.
    Formats and columns: docs/batch.md."""
    from tastebud.privacy import BatchOutputs
    from tastebud.registry.recommender import load_model
    from tastebud.serving.batch import output_format, recommend_all, select_users

    if all_users == (user_keys is not None):
        raise InvalidInput("choose the users: --all, or --user-keys FILE (one pseudonym a line)")
    fmt = output_format(out_file)  # before any loading: a bad extension fails at once
    keys = _read_keys(user_keys) if user_keys is not None else None
    services = _services(_settings(data_dir))
    try:
        mv = services.registry.resolve(model_name, alias)
        if mv is None:
            raise ModelNotFound(
                f"no {alias} version of model {model_name!r}: run `tastebud train --full` and "
                f"promote a version (`tastebud models promote {model_name} N`)"
            )
        if mv.kind != "recommender":
            raise InvalidInput(f"model {model_name!r} is a {mv.kind}, not a recommender")
        path = services.registry.artifact_path(mv)
    finally:
        services.close()
    loaded = load_model(path)
    info = {"name": mv.name, "version": mv.version, "artifact_id": mv.artifact_id}
    total = len(select_users(loaded, keys).idx)
    with _progress() as progress:
        task = progress.add_task(f"top {k} of {model_name} v{mv.version}", total=total)
        result = recommend_all(
            loaded,
            k,
            out_file,
            version_info=info,
            users=keys,
            progress=lambda n: progress.advance(task, n),
        )
    # Registered, so that erasing a user also removes them from this file.
    services = _services(_settings(data_dir))
    try:
        BatchOutputs(services.store).register(
            str(out_file.resolve()), fmt, mv.name, mv.version, int(time.time() * 1000)
        )
    finally:
        services.close()
    skipped = [f"{result.removed:,} removed users"] if result.removed else []
    if result.unknown:
        skipped.append(f"{result.unknown:,} unknown keys")
    out.print(
        f"wrote {result.users:,} users' top {k} to {out_file} ({fmt}) in "
        f"{result.seconds:.1f} s ({result.users_per_second:,.0f} users/s) from "
        f"{mv.name} v{mv.version} ({alias}, artifact {mv.artifact_id})"
        + (f"; skipped {', '.join(skipped)}" if skipped else "")
    )
