"""``tastebud pseudonym USER_ID``: the pseudonym Tastebud stores instead of a user id."""

from __future__ import annotations

from typing import Annotated

import typer

from tastebud.cli import DataDirOpt, _settings, app, out
from tastebud.errors import ConfigError

__all__ = ["pseudonym_cmd"]


@app.command("pseudonym")
def pseudonym_cmd(
    user_id: Annotated[str, typer.Argument(help="The user's id, as your app sends it.")],
    anonymous: Annotated[
        bool,
        typer.Option(
            "--anonymous", help="USER_ID is an anonymous (device or cookie) id, not a user id."
        ),
    ] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Print the pseudonym of a user id: the `user_key` of batch files (`tastebud recommend`),
    exports and the database, which never hold raw ids. It is a keyed hash (HMAC-SHA256) with
    the deployment's pseudonym key, so this needs that key: TASTEBUD_PSEUDONYM_KEY, or the key
    file in the data directory (`secrets/pseudonym.key`), i.e. administrator access to the
    machine. Nothing is looked up or stored."""
    from tastebud.privacy import Pseudonymizer

    settings = _settings(data_dir)
    # The key as tastebud.privacy.load_secrets finds it, without its side effect: in
    # development it generates missing secrets, and a fresh key's pseudonyms match nothing.
    key_file = settings.data_dir / "secrets" / "pseudonym.key"
    if settings.pseudonym_key is not None:
        key = settings.pseudonym_key.get_secret_value()
    else:
        try:
            key = key_file.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"no pseudonym key: set TASTEBUD_PSEUDONYM_KEY, or point --data-dir (or "
                f"TASTEBUD_DATA_DIR) at the deployment's data directory ({key_file} does not "
                "exist)"
            ) from None
        except PermissionError:
            raise ConfigError(
                f"cannot read {key_file}: the pseudonym key is readable by its owner only"
            ) from None
    if len(key) < 32:
        raise ConfigError("the pseudonym key must be at least 32 characters")
    pseudonymizer = Pseudonymizer(key.encode("utf-8"))
    # The pseudonym alone on stdout, for scripts: KEY=$(tastebud pseudonym "$ID").
    out.print(pseudonymizer.anonymous(user_id) if anonymous else pseudonymizer.user(user_id))
