"""Session-wide log capture for the log audit (``test_zz_log_audit.py``, which runs last).

:class:`LogAudit` keeps every line the session logs, formatted and filtered by the handler
Tastebud's ``configure_logging`` installed (so the lines are the ones that would be written), and
collects what must never appear in them: the secrets tests configure, every API key created and
every raw user id that was pseudonymized. ``conftest.py`` starts it for the session.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tastebud.apikeys import KeyInfo, KeyManager
from tastebud.privacy import Pseudonymizer, redact_text

__all__ = ["LogAudit"]

API_KEY = re.compile(r"tb_(?:ingest|serve|admin)_[0-9a-f]+_[A-Za-z0-9_-]{20,}")
SIM_USER = re.compile(r"nb-user-\d{7}")
# What separates a value from its neighbours in a rendered line (key=value, JSON, paths).
_SEPARATORS = re.compile(r"[\s\"'=,:;()\[\]{}<>/?&|\\]+")
_MAX_IDS = 500_000


class _Capture(logging.Handler):
    def __init__(self, audit: LogAudit) -> None:
        super().__init__(logging.NOTSET)
        self.audit = audit
        self._plain = logging.Formatter("%(levelname)s %(name)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            real = next(
                (h for h in logging.getLogger().handlers if getattr(h, "_tastebud", False)), None
            )
            if real is None:  # logging not configured yet: the raw message, unscrubbed
                self.audit.lines.append(self._plain.format(record))
            elif real.filter(record):
                self.audit.lines.append(real.format(record))
        except Exception:
            self.handleError(record)


class LogAudit:
    """Every log line of the session and the values that must not appear in any of them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.secrets: set[str] = set()
        self.raw_ids: set[str] = set()
        self.tests_started = 0
        self._handler = _Capture(self)

    def install(self, mp: pytest.MonkeyPatch) -> None:
        """Attach the capture to the root logger and wrap key creation and pseudonymization
        (each wrapper only records its input)."""
        logging.getLogger().addHandler(self._handler)
        create = KeyManager.create
        user, anonymous = Pseudonymizer.user, Pseudonymizer.anonymous

        def create_key(manager: KeyManager, name: str, scope: str) -> tuple[KeyInfo, str]:
            info, key = create(manager, name, scope)
            self.note_secrets([key, key.split("_", 3)[3]])
            return info, key

        def recording(method: Callable[[Pseudonymizer, str], str]) -> Any:
            def wrapper(p: Pseudonymizer, raw: str) -> str:
                self.note_raw_id(raw)
                return method(p, raw)

            return wrapper

        mp.setattr(KeyManager, "create", create_key)
        mp.setattr(Pseudonymizer, "user", recording(user))
        mp.setattr(Pseudonymizer, "anonymous", recording(anonymous))

    def ensure_attached(self) -> None:
        """Re-attach the capture if a test replaced the root logger's handlers."""
        root = logging.getLogger()
        if self._handler not in root.handlers:
            root.addHandler(self._handler)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)

    def note_secrets(self, values: Iterable[str]) -> None:
        for value in values:
            for part in {value, *value.split(",")}:
                if len(part) >= 16:
                    self.secrets.add(part)

    def note_raw_id(self, raw: str) -> None:
        # Short ids ("u1", "x") would match unrelated text; ids of 6+ characters with a letter
        # ("user-1", "nb-user-0000042", e-mails) are specific enough.
        if len(raw) >= 6 and len(self.raw_ids) < _MAX_IDS and any(c.isalpha() for c in raw):
            self.raw_ids.add(raw)

    def findings(self, lines: list[str]) -> list[str]:
        """What leaked into ``lines``: API keys, secrets, raw user ids and PII (masked)."""
        text = "\n".join(lines)
        out: list[str] = []
        out += [f"an API key ({m.group()[:9]}...)" for m in API_KEY.finditer(text)]
        out += [f"a secret ({s[:4]}...)" for s in sorted(self.secrets) if s in text]
        out += [f"a simulated user id ({m.group()})" for m in SIM_USER.finditer(text)]
        tokens = set(_SEPARATORS.split(text))
        for raw in sorted(self.raw_ids):
            if (raw in tokens) if not _SEPARATORS.search(raw) else (raw in text):
                out.append(f"a raw user id ({raw[:3]}...)")
        if redact_text(text) != text:
            for line in lines:
                redacted = redact_text(line)
                if redacted != line:
                    out.append(f"PII-shaped text: {redacted[:200]}")
        return out

    @staticmethod
    def server_logs(base: Path) -> list[str]:
        """The lines of every real server process the session started (``conftest.Server``)."""
        lines: list[str] = []
        for path in sorted(base.rglob("server-*.log")):
            lines += path.read_text(errors="replace").splitlines()
        return lines
