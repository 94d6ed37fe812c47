"""The examples of the documentation, run (issue 15, point 11: a sentence in the docs is a
promise). Every event of docs/events.md is sent and accepted, every answer shown there is the
answer given, and every ``curl`` and Python example of README.md, docs/api.md, docs/events.md,
docs/features.md and docs/experiments.md runs as written against a real server process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tastebud.config import Settings
from tastebud.services import build_services

from conftest import Api, Server

ROOT = Path(__file__).resolve().parents[1]
EVENTS_DOC = ROOT / "docs" / "events.md"
RUNNABLE = [
    "README.md",
    "docs/api.md",
    "docs/events.md",
    "docs/features.md",
    "docs/experiments.md",
]


def blocks(text: str) -> list[tuple[str, str]]:
    """Fenced blocks in order: (language, body)."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)


def event_examples() -> Iterator[tuple[int, Any, str | None]]:
    """(index, request, the answer shown after it or None) for every JSON block of events.md."""
    found = blocks(EVENTS_DOC.read_text())
    for n, (lang, body) in enumerate(found):
        if lang != "json":
            continue
        answer = found[n + 1][1] if n + 1 < len(found) and found[n + 1][0] == "" else None
        yield n, orjson.loads(body), answer


def test_every_event_example_is_accepted(api: Api) -> None:
    seen = 0
    for _, request, answer in event_examples():
        if answer is not None:
            continue  # an example of a bad request, checked below
        if "eventType" in request:  # the seed's trackEvent payload
            r = api.request("POST", "/api/events", "ingest", json=request)
        else:
            r = api.request("POST", "/v1/events", "ingest", json=request)
        assert r.status_code == 202, (request, r.text)
        seen += 1
    assert seen >= 18  # every built-in type, the custom one and the seed's


def test_every_answer_shown_is_the_answer_given(api: Api) -> None:
    pairs = [(req, orjson.loads(ans)) for _, req, ans in event_examples() if ans is not None]
    assert len(pairs) == 2
    (bad, bad_answer), (batch, batch_answer) = pairs
    r = api.request("POST", "/v1/events", "ingest", json=bad)
    assert (r.status_code, r.json()) == (422, bad_answer)
    stored = batch["events"][1]  # "after e0 was stored"
    assert api.request("POST", "/v1/events", "ingest", json=stored).status_code == 202
    r = api.request("POST", "/v1/events/batch", "ingest", json=batch)
    assert (r.status_code, r.json()) == (200, batch_answer)


# -- curl and Python examples against a real server ------------------------------------------
def _runnable(doc: str) -> list[tuple[str, str]]:
    text = (ROOT / doc).read_text()
    # docs/api.md's Browsing section has its own test (test_api_lists.py), with its data.
    text = re.sub(r"\n## Browsing\n.*?(?=\n## )", "\n", text, flags=re.S)
    return [
        (lang, body)
        for lang, body in blocks(text)
        if (lang == "bash" and "curl " in body) or (lang == "python" and "Client(" in body)
    ]


@pytest.fixture
def doc_server(server_factory: Callable[..., Server]) -> tuple[Server, dict[str, str]]:
    server = server_factory()
    services = build_services(
        Settings(
            data_dir=Path(server.env["TASTEBUD_DATA_DIR"]),
            pseudonym_key=server.env["TASTEBUD_PSEUDONYM_KEY"],
            fernet_keys=server.env["TASTEBUD_FERNET_KEYS"],
        )
    )
    keys = {s: services.keys.create(f"docs-{s}", s)[1] for s in ("ingest", "serve", "admin")}
    services.close()
    return server, keys


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE)
def test_examples_run_as_written(doc: str, doc_server: tuple[Server, dict[str, str]]) -> None:
    server, keys = doc_server
    examples = _runnable(doc)
    assert examples, f"{doc} has no runnable example"
    env = {
        **os.environ,
        "INGEST_KEY": keys["ingest"],
        "TASTEBUD_INGEST_KEY": keys["ingest"],
        "SERVE_KEY": keys["serve"],
        "ADMIN_KEY": keys["admin"],
    }
    for lang, body in examples:
        body = body.replace("http://127.0.0.1:8000", server.url)
        if lang == "bash":
            # Every curl must get a 2xx answer (--fail-with-body), and every line must succeed.
            script = (
                "set -euo pipefail\n"
                'curl() { command curl --show-error --fail-with-body "$@"; echo; }\n' + body
            )
            r = subprocess.run(
                ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60
            )
        else:
            events = [
                {
                    "event_type": "page_view",
                    "user_id": "u-docs",
                    "timestamp": "2026-11-26T10:00:00Z",
                    "data": {"url": "/docs"},
                }
            ]
            prelude = f"INGEST_KEY = {keys['ingest']!r}\nevents = {events!r}\n"
            r = subprocess.run(
                [sys.executable, "-c", prelude + body],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert r.returncode == 0, f"{doc}:\n{body}\n---\n{r.stdout}\n{r.stderr}"
