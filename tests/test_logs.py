"""Secrets, API keys, raw user ids and PII never appear in logs (access logs included)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from conftest import Api, event


def test_no_secret_or_identity_in_logs(
    make_api: Any,
    make_settings: Any,
    secret_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    api: Api = make_api(make_settings(log_level="DEBUG"))
    raw_user = "carol.secret-user@example.net"
    api.request(
        "POST",
        "/v1/events",
        "ingest",
        json=event("search", user=raw_user, data={"query": "contact carol@example.net"}),
    )
    api.request(
        "POST",
        "/v1/events/batch",
        "ingest",
        json={"events": [event(user=raw_user), event("nope", user=raw_user)]},
    )
    api.request("PUT", f"/v1/users/{raw_user}", json={"email": "carol@example.net"})
    api.request("GET", f"/v1/users/{raw_user}", "serve")
    api.request("GET", f"/v1/users/{raw_user}/consent", "serve")
    api.request("GET", f"/v1/users/{raw_user}/consent", "ingest")  # 403
    api.client.get("/v1/items/x", headers={"Authorization": f"Bearer {api.keys['admin']}x"})
    api.client.get("/v1/items/x", headers={"Authorization": "Bearer tb_admin_aaaaaaaaaaaa_guess"})
    from tastebud.monitoring import get_logger

    get_logger("test").info(
        "direct", authorization=f"Bearer {api.keys['serve']}", note=f"key {api.keys['ingest']}"
    )
    logged = caplog.text + capsys.readouterr().err
    assert "request" in logged and "/v1/users/{user_id}" in logged  # the access log ran
    forbidden = [
        *api.keys.values(),
        *(k.split("_", 3)[3] for k in api.keys.values()),
        secret_env["pseudonym_key"],
        secret_env["fernet_keys"],
        raw_user,
        "carol@example.net",
    ]
    for value in forbidden:
        assert value not in logged, f"{value[:10]}... leaked into the logs"
