"""Key rotation (issue 9, item 4): every encrypted field is re-encrypted under the newest key,
so the old key can be removed; proven on the raw ciphertexts in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import text

from tastebud.catalog import UserIn
from tastebud.config import Settings
from tastebud.events.rotation import rotate
from tastebud.rights import transparency_report
from tastebud.services import Services, build_services

from conftest import event

# The default policy, plus the IP address encrypted: an encrypted value in ``context`` too.
POLICY = {"email": "encrypt", "phone": "encrypt", "password": "drop", "ip": "encrypt"}
N_EVENTS = 5


@pytest.fixture
def open_services(
    db_url: str, make_settings: Callable[..., Settings]
) -> Iterator[Callable[[Sequence[bytes]], Services]]:
    """Services on one database (SQLite and PostgreSQL) with the given Fernet keys."""
    opened: list[Services] = []

    def open_(keys: Sequence[bytes]) -> Services:
        settings = make_settings(
            database_url=db_url,
            fernet_keys=",".join(k.decode() for k in keys),
            sensitive_fields=POLICY,
        )
        services = build_services(settings, migrate=False)
        opened.append(services)
        return services

    yield open_
    for services in opened:
        services.close()


def raw_json(services: Services, table: str, column: str, key: str, value: str) -> Any:
    """A JSON column exactly as the database holds it (its text, parsed here)."""
    sql = f"SELECT CAST({column} AS TEXT) FROM {table} WHERE {key} = :v"
    with services.store.engine.connect() as conn:
        return orjson.loads(conn.execute(text(sql), {"v": value}).scalar_one())


def stored_tokens(services: Services, event_ids: list[str], user_key: str) -> dict[str, str]:
    """Every ciphertext stored for the test's events and user, by where it is."""
    tokens = {}
    for event_id in event_ids:
        data = raw_json(services, "events", "data", "event_id", event_id)
        context = raw_json(services, "events", "context", "event_id", event_id)
        tokens[f"{event_id}.data"] = data["fields"]["Email"]["$enc"]
        tokens[f"{event_id}.context"] = context["ip"]["$enc"]
    attributes = raw_json(services, "users", "attributes", "user_key", user_key)
    tokens["user.email"] = attributes["email"]["$enc"]
    return tokens


def test_rotation_moves_every_value_to_the_newest_key(
    open_services: Callable[[Sequence[bytes]], Services],
) -> None:
    key_a, key_b = Fernet.generate_key(), Fernet.generate_key()
    # Written under key A alone.
    old = open_services([key_a])
    events = [
        event(
            "form_submit",
            user=f"user-{i}",
            data={"form_id": "signup", "fields": {"Email": f"u{i}@example.com", "plan": "pro"}},
            context={"ip": f"203.0.113.{i}", "locale": "de-DE"},
        )
        for i in range(N_EVENTS)
    ]
    assert old.ingestor.ingest(events).accepted == N_EVENTS
    old.catalog.put_user("user-0", UserIn(segment="a", email="ann@example.com"), old.now_ms())
    for i in range(1, 4):
        old.catalog.put_user(f"user-{i}", UserIn(email=f"u{i}@example.com"), old.now_ms())
    old.catalog.put_user("user-9", UserIn(segment="b"), old.now_ms())  # nothing encrypted
    # Rows that mention the marker without holding an encrypted value are read, never written.
    decoys = {"note": 'a "$enc" in free text', "odd": {"$enc": 5}, "two": {"$enc": "x", "y": 1}}
    old.store.insert_events(
        [
            {
                "event_id": "decoy",
                "event_type": "custom.note",
                "user_key": "d" * 32,
                "ts_ms": 1,
                "received_ms": old.now_ms(),
                "data": decoys,
            }
        ]
    )
    event_ids = [e["event_id"] for e in events]
    user_key = old.pseudonymizer.user("user-0")
    plaintext = {f"{e['event_id']}.data": f"u{i}@example.com" for i, e in enumerate(events)}
    plaintext |= {f"{e['event_id']}.context": f"203.0.113.{i}" for i, e in enumerate(events)}
    plaintext["user.email"] = "ann@example.com"

    before = stored_tokens(old, event_ids, user_key)
    for where, token in before.items():
        assert Fernet(key_a).decrypt(token.encode()).decode() == plaintext[where]
        with pytest.raises(InvalidToken):
            Fernet(key_b).decrypt(token.encode())

    # The new key goes first; small batches so that several transactions are needed.
    both = open_services([key_b, key_a])
    report = rotate(both.store, [key_b, key_a], batch_size=2)
    by_table = {r.table: r for r in report.tables}
    assert (by_table["events"].scanned, by_table["events"].rewritten) == (N_EVENTS + 1, N_EVENTS)
    assert by_table["events"].fields == 2 * N_EVENTS and by_table["events"].unreadable == 0
    assert (by_table["users"].scanned, by_table["users"].rewritten) == (4, 4)
    assert by_table["users"].fields == 4

    after = stored_tokens(both, event_ids, user_key)
    for where, token in after.items():
        raw = token.encode()
        assert token != before[where]
        assert MultiFernet([Fernet(key_b), Fernet(key_a)]).decrypt(raw).decode() == plaintext[where]
        assert Fernet(key_b).decrypt(raw).decode() == plaintext[where]
        with pytest.raises(InvalidToken):
            Fernet(key_a).decrypt(raw)  # the old key alone no longer reads anything
    assert raw_json(both, "events", "data", "event_id", "decoy") == decoys

    # With the old key removed, export-style decryption still works; with only it, nothing does.
    only_b = open_services([key_b])
    row = only_b.store.get_event(event_ids[0])
    assert row is not None
    assert only_b.privacy.decrypt(row["data"])["fields"]["Email"] == "u0@example.com"
    user = only_b.catalog.users.get(user_key)
    assert user is not None
    assert only_b.privacy.decrypt(user["attributes"])["email"] == "ann@example.com"
    only_a = open_services([key_a])
    with pytest.raises(ValueError, match="no configured key"):
        only_a.privacy.decrypt(row["data"])

    # Idempotent: a second run finds nothing to rotate and changes nothing.
    again = rotate(both.store, [key_b, key_a], batch_size=2)
    assert again.rewritten == 0 and sum(r.fields for r in again.tables) == 0
    assert stored_tokens(both, event_ids, user_key) == after
    assert transparency_report(both.store).key_rotations == 2


def test_values_no_key_reads_are_counted_and_left_alone(
    open_services: Callable[[Sequence[bytes]], Services],
) -> None:
    key_a, key_b, lost = (Fernet.generate_key() for _ in range(3))
    services = open_services([key_a])
    foreign = Fernet(lost).encrypt(b"x@example.com").decode()
    services.store.insert_events(
        [
            {
                "event_id": "lost",
                "event_type": "custom.note",
                "user_key": "d" * 32,
                "ts_ms": 1,
                "received_ms": 1,
                "data": {"email": {"$enc": foreign}},
                "context": None,
            }
        ]
    )
    for _ in range(2):
        report = rotate(services.store, [key_b, key_a])
        assert report.unreadable == 1 and report.rewritten == 0
    assert raw_json(services, "events", "data", "event_id", "lost") == {"email": {"$enc": foreign}}
    # The context column was NULL and stays NULL (not JSON null).
    with services.store.engine.connect() as conn:
        context = conn.execute(text("SELECT context FROM events WHERE event_id = 'lost'"))
        assert context.scalar_one() is None


def test_cli_rotate_keys(
    open_services: Callable[[Sequence[bytes]], Services],
    db_url: str,
    secret_env: dict[str, str],
    tmp_path: Path,
) -> None:
    key_a, key_b = Fernet.generate_key(), Fernet.generate_key()
    old = open_services([key_a])
    ev = event("form_submit", data={"form_id": "f", "fields": {"email": "cli@example.com"}})
    assert old.ingestor.ingest([ev]).accepted == 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(
        {
            "TASTEBUD_DATA_DIR": str(tmp_path / "cli-data"),
            "TASTEBUD_DATABASE_URL": db_url,
            "TASTEBUD_PSEUDONYM_KEY": secret_env["pseudonym_key"],
            "TASTEBUD_FERNET_KEYS": f"{key_b.decode()},{key_a.decode()}",
        }
    )
    cmd = [sys.executable, "-m", "tastebud.cli", "privacy", "rotate-keys"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 rows rewritten" in r.stdout and "older keys can be removed" in r.stdout
    assert key_a.decode() not in r.stdout + r.stderr and key_b.decode() not in r.stdout + r.stderr
    token = raw_json(old, "events", "data", "event_id", ev["event_id"])["fields"]["email"]["$enc"]
    assert Fernet(key_b).decrypt(token.encode()) == b"cli@example.com"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "0 rows rewritten" in r.stdout
