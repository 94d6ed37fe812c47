"""``tastebud privacy export|erase|report``: data-subject rights from the command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from tastebud.cli import DataDirOpt, _services, _settings, out
from tastebud.cli.privacy import privacy_app

__all__ = ["erase_cmd", "export_cmd", "report_cmd"]

UserArg = Annotated[str, typer.Argument(help="The user's id (as your app sends it).")]


@privacy_app.command("export")
def export_cmd(
    user_id: UserArg,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (default: stdout).")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Everything held about a user in one JSON document (decrypted), as the API's export."""
    from tastebud.privacy import PrivacyLog
    from tastebud.rights import export_user

    services = _services(_settings(data_dir))
    try:
        key = services.pseudonymizer.user(user_id)
        PrivacyLog(services.store).record("export", 1, {}, int(time.time() * 1000))
        chunks = export_user(services.export_context(), user_id, key)
        if out_file is None:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.write(b"\n")
        else:
            from tastebud.files import open_private

            tmp = out_file.with_name(f".{out_file.name}.tmp")
            with open_private(tmp) as fh:  # decrypted personal data: 0600
                for chunk in chunks:
                    fh.write(chunk)
            tmp.replace(out_file)
            typer.echo(f"wrote {out_file}", err=True)
    finally:
        services.close()


@privacy_app.command("erase")
def erase_cmd(
    user_id: UserArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Erase a user from every store (events, attributes, consents, features, real-time state,
    models, batch lists...) and print the receipt. Cannot be undone."""
    from tastebud.rights import erase

    if not yes and not typer.confirm(f"Erase everything held about {user_id!r}?"):
        raise typer.Exit(1)
    services = _services(_settings(data_dir))
    try:
        receipt = erase(services.erasure_context(), services.pseudonymizer.user(user_id))
    finally:
        services.close()
    for store, n in receipt.stores.items():
        out.print(f"  {store:<14}{n:>10,}")
    out.print(
        f"erased {receipt.total:,} rows in {receipt.seconds:.2f} s; receipt {receipt.request_id}"
    )


@privacy_app.command("report")
def report_cmd(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """The transparency report: consent changes, opt-outs, exports, erasures, retention."""
    from tastebud.rights import transparency_report

    services = _services(_settings(data_dir))
    try:
        report = transparency_report(services.store, month)
    finally:
        services.close()
    if as_json:
        out.print(report.model_dump_json(indent=2))
        return
    for key, value in report.model_dump().items():
        if not isinstance(value, dict):
            out.print(f"{key:<28}{value}")
