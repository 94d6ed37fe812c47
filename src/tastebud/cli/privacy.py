"""``tastebud privacy ...``: key rotation and retention (more commands join ``privacy_app``)."""

from __future__ import annotations

from typing import Annotated

import typer

from tastebud.cli import DataDirOpt, _services, _settings, _spinner, app, out

__all__ = ["privacy_app", "retention_cmd", "rotate_keys_cmd"]

privacy_app = typer.Typer(
    help="Privacy: export, erasure, transparency report, retention, encryption key rotation.",
    no_args_is_help=True,
)
app.add_typer(privacy_app, name="privacy")


@privacy_app.command("rotate-keys")
def rotate_keys_cmd(
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows re-encrypted per transaction.")
    ] = 1000,
    data_dir: DataDirOpt = None,
) -> None:
    """Re-encrypt every encrypted field (event data and context, user attributes) with the
    newest key, the first of TASTEBUD_FERNET_KEYS. Put the new key first everywhere, run this,
    then remove the old key. Safe to interrupt and to run again: values already under the
    newest key are left alone."""
    from tastebud.events.rotation import rotate
    from tastebud.privacy import load_secrets

    settings = _settings(data_dir)
    services = _services(settings)
    try:
        keys = load_secrets(settings).fernet_keys
        with _spinner() as spinner:
            spinner.add_task("re-encrypting with the newest key", total=None)
            report = rotate(services.store, keys, batch_size=batch_size)
    finally:
        services.close()
    for line in report.lines():
        out.print(f"  {line}")
    out.print(f"{report.rewritten:,} rows rewritten in {report.seconds:.1f} s")
    if report.unreadable:
        out.print(
            f"warning: {report.unreadable:,} values are readable with none of the configured "
            "keys and were left as they are"
        )
    elif len(keys) > 1:
        out.print(
            "every encrypted value is now under the newest key: the older keys can be removed "
            "from TASTEBUD_FERNET_KEYS"
        )


@privacy_app.command("retention")
def retention_cmd(
    batch_size: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Events deleted per transaction.")
    ] = 10_000,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete events older than their type's retention period (TASTEBUD_RETENTION_DAYS),
    counted from when Tastebud received them. The worker runs this daily."""
    from tastebud.events.retention import apply_retention

    settings = _settings(data_dir)
    services = _services(settings)
    days = settings.retention_days
    try:
        with _spinner() as spinner:
            spinner.add_task("deleting events past their retention period", total=None)
            deleted = apply_retention(
                services.store, days, services.now_ms(), batch_size=batch_size
            )
    finally:
        services.close()
    for event_type, n in deleted.items():
        kept = days.get(event_type, days.get("*"))
        out.print(f"  {event_type:<24} {n:>12,} deleted (kept {kept} days)")
    total = sum(deleted.values())
    out.print(
        f"{total:,} events deleted"
        if total
        else "no events older than their type's retention period"
    )
