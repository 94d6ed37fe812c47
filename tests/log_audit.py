"""The log audit (issue 9, item 7; issue 16, point 7): a pytest plugin that keeps every line a
session logs and fails the session when one holds an API key, a secret, a raw user id or PII.

It is loaded for every run by ``-p log_audit`` in pyproject's ``addopts`` (``tests/`` is on the
``pythonpath``), so it sees every test the run collects, the doctests of ``src/tastebud``
included, whatever the order of the run or the files it was given:

* a handler on the root logger keeps each line as it would be written: formatted and filtered by
  the handler Tastebud's ``configure_logging`` installed (scrubbed), or the raw message before
  logging is configured. It is re-attached before every test; a test that detaches it is named
  in the report (its lines were not seen);
* ``KeyManager.create`` and ``Pseudonymizer.user`` / ``anonymous`` are wrapped to record what
  must never appear: every API key created and every raw user id pseudonymized; the
  ``log_audit`` fixture's :meth:`LogAudit.note_secrets` adds configured secrets
  (``conftest.secret_env`` does);
* after the last test (a ``pytest_runtestloop`` wrapper: every fixture is torn down and every
  real server process stopped) the lines, and the ``server-*.log`` files of the servers the
  tests started (``conftest.Server``), are audited. A leak is reported as one failed test,
  ``log audit``, that names the test (or server log) each leak came from: the exit status is 1
  and the summary says why.

With pytest-xdist every worker is a process with its own logs: each worker audits its own lines
and server logs and hands its findings to the controller (``workeroutput``), which reports them
all as one failure.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tastebud.apikeys import KeyInfo, KeyManager
    from tastebud.privacy import Pseudonymizer

__all__ = ["LogAudit", "log_audit"]

API_KEY = re.compile(r"tb_(?:ingest|serve|admin)_[0-9a-f]+_[A-Za-z0-9_-]{20,}")
SIM_USER = re.compile(r"nb-user-\d{7}")
RICH_LOCALS = "─ locals ─"
"""The panel title of a rich traceback that prints each frame's local variables."""
OUTSIDE = "(outside any test)"
"""Where lines logged between tests (collection, session start and end) are filed."""
REPORT_ID = "log audit"
"""The node id of the failure that reports leaks."""
# What separates a value from its neighbours in a rendered line (key=value, JSON, paths).
_SEPARATORS = re.compile(r"[\s\"'=,:;()\[\]{}<>/?&|\\]+")
_MAX_IDS = 500_000
_XDIST_KEY = "tastebud_log_audit"
_KEY = pytest.StashKey["LogAudit"]()
_WORKERS = pytest.StashKey[list[dict[str, Any]]]()
_SUMMARY = pytest.StashKey[str]()


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
                self.audit.add(self._plain.format(record))
            elif real.filter(record):
                self.audit.add(real.format(record))
        except Exception:
            self.handleError(record)


class LogAudit:
    """Every line logged in this process, filed by test, and what must not appear in any."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.where: list[str] = []
        """The node id of the test running when each line was logged (or :data:`OUTSIDE`)."""
        self.secrets: set[str] = set()
        self.raw_ids: set[str] = set()
        self.tests_started = 0
        self.detached_in: list[str] = []
        self.server_dirs: set[Path] = set()
        self.server_logs = 0
        """How many server logs the last :meth:`audit` read."""
        self.current = OUTSIDE
        self._handler = _Capture(self)
        self._patches = pytest.MonkeyPatch()

    def add(self, line: str) -> None:
        """Keep one rendered line, filed under the running test."""
        self.lines.append(line)
        self.where.append(self.current)

    def install(self) -> None:
        """Attach the capture to the root logger and wrap key creation and pseudonymization
        (each wrapper only records its input)."""
        from tastebud.apikeys import KeyManager
        from tastebud.privacy import Pseudonymizer

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

        self._patches.setattr(KeyManager, "create", create_key)
        self._patches.setattr(Pseudonymizer, "user", recording(user))
        self._patches.setattr(Pseudonymizer, "anonymous", recording(anonymous))

    def attached(self) -> bool:
        """Whether the capture is still on the root logger."""
        return self._handler in logging.getLogger().handlers

    def ensure_attached(self) -> None:
        """Re-attach the capture if a test replaced the root logger's handlers."""
        if not self.attached():
            logging.getLogger().addHandler(self._handler)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        self._patches.undo()

    def note_secrets(self, values: Iterable[str]) -> None:
        """Values that must never be logged (each comma-separated part of 16+ characters)."""
        for value in values:
            for part in {value, *value.split(",")}:
                if len(part) >= 16:
                    self.secrets.add(part)

    def note_raw_id(self, raw: str) -> None:
        # Short ids ("u1", "x") would match unrelated text; ids of 6+ characters with a letter
        # ("user-1", "nb-user-0000042", e-mails) are specific enough.
        if len(raw) >= 6 and len(self.raw_ids) < _MAX_IDS and any(c.isalpha() for c in raw):
            self.raw_ids.add(raw)

    def findings(self, lines: list[str], spaced: set[str] | None = None) -> list[str]:
        """What leaked into ``lines``: API keys, secrets, raw user ids and PII (masked).

        ``spaced``: the recorded ids with a separator in them (computed when not given; pass
        them when auditing many groups of lines).
        """
        if spaced is None:
            spaced = {r for r in self.raw_ids if _SEPARATORS.search(r)}
        text = "\n".join(lines)
        out: list[str] = []
        out += [f"an API key ({m.group()[:9]}...)" for m in API_KEY.finditer(text)]
        out += [f"a secret ({s[:4]}...)" for s in sorted(self.secrets) if s in text]
        out += [f"a simulated user id ({m.group()})" for m in SIM_USER.finditer(text)]
        # Ids without a separator are matched as whole tokens (a set lookup per token, so a
        # million recorded ids cost nothing); the few with one are searched for as text.
        tokens = set(_SEPARATORS.split(text))
        leaked = (tokens & self.raw_ids) | {r for r in spaced if r in text}
        out += [f"a raw user id ({raw[:3]}...)" for raw in sorted(leaked)]
        if _redacted(text) != text:
            for line in lines:
                redacted = _redacted(line)
                if redacted != line:
                    out.append(f"PII-shaped text: {redacted[:200]}")
        return out

    def audit(self) -> list[tuple[str, str]]:
        """Every leak as (where: a test's node id or a server log, what), and every test that
        detached the capture or printed frame locals."""
        by_test: dict[str, list[str]] = defaultdict(list)
        for where, line in zip(self.where, self.lines, strict=True):
            by_test[where].append(line)
        self.server_logs = 0
        for path in self._server_logs():
            by_test[str(path)] = path.read_text(errors="replace").splitlines()
            self.server_logs += 1
        found = [
            ("(capture)", f"detached from the root logger during {n}") for n in self.detached_in
        ]
        spaced = {r for r in self.raw_ids if _SEPARATORS.search(r)}
        for where, lines in by_test.items():
            found += [(where, what) for what in self.findings(lines, spaced)]
            if any(RICH_LOCALS in line for line in lines):
                # Tracebacks are printed plain (monitoring/logging.py): no frame locals in a log.
                found.append((where, "a traceback that prints frame locals"))
        return found

    def _server_logs(self) -> Iterator[Path]:
        for base in sorted(self.server_dirs):
            if base.is_dir():
                yield from sorted(base.rglob("server-*.log"))


def _redacted(text: str) -> str:
    from tastebud.privacy import redact_text

    return redact_text(text)


def _audit_of(config: pytest.Config) -> LogAudit | None:
    return config.stash.get(_KEY, None)


@pytest.fixture(scope="session", autouse=True)
def log_audit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LogAudit:
    """The session's :class:`LogAudit` (tests register their secrets with ``note_secrets``);
    the logs of real servers started under the session's temporary directory are audited too."""
    audit = _audit_of(request.config)
    assert audit is not None, "the log_audit plugin is not configured"
    audit.server_dirs.add(tmp_path_factory.getbasetemp())
    return audit


def pytest_sessionstart(session: pytest.Session) -> None:
    audit = LogAudit()
    audit.install()
    session.config.stash[_KEY] = audit


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    audit = _audit_of(item.config)
    if audit is not None:
        audit.tests_started += 1
        audit.current = item.nodeid
        audit.ensure_attached()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    audit = _audit_of(item.config)
    if audit is not None and not audit.attached():
        audit.detached_in.append(item.nodeid)
        audit.ensure_attached()


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[None]:
    try:
        return (yield)
    finally:
        _finish(session)


def _finish(session: pytest.Session) -> None:
    config = session.config
    audit = _audit_of(config)
    if audit is None:
        return
    audit.current = OUTSIDE
    found = audit.audit()
    summary = {
        "found": [list(f) for f in found],
        "lines": len(audit.lines),
        "tests": audit.tests_started,
        "server_logs": audit.server_logs,
    }
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports for everyone
        workeroutput[_XDIST_KEY] = summary
        return
    reports = [summary, *config.stash.get(_WORKERS, [])]
    _report(session, reports)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist (controller): keep what a finished worker found."""
    del error
    summary = getattr(node, "workeroutput", {}).get(_XDIST_KEY)
    if summary is not None:
        node.config.stash.setdefault(_WORKERS, []).append(summary)


def _report(session: pytest.Session, summaries: list[dict[str, Any]]) -> None:
    found = [tuple(f) for s in summaries for f in s["found"]]
    lines = sum(s["lines"] for s in summaries)
    tests = sum(s["tests"] for s in summaries)
    logs = sum(s["server_logs"] for s in summaries)
    outcome = f"{len(found)} found (the '{REPORT_ID}' failure above)" if found else "no leak"
    session.config.stash[_SUMMARY] = (
        f"log audit: {lines:,} lines logged by {tests:,} tests, {logs} server logs: {outcome}"
    )
    if not found:
        return
    by_where: dict[str, list[str]] = defaultdict(list)
    for where, what in found:
        by_where[where].append(what)
    text = [
        f"{len(found)} leak{'' if len(found) == 1 else 's'} in the {lines:,} lines logged by "
        f"{tests:,} tests and their servers "
        "(values masked); by test or server log:"
    ]
    for where in sorted(by_where):
        whats = sorted(set(by_where[where]))
        text.append(f"  {where}:")
        text += [f"    {what}" for what in whats[:20]]
        if len(whats) > 20:
            text.append(f"    ... and {len(whats) - 20} more")
    report = pytest.TestReport(
        nodeid=REPORT_ID,
        location=(__file__, 0, REPORT_ID),
        keywords={},
        outcome="failed",
        longrepr="\n".join(text),
        when="call",
    )
    hook = session.config.hook
    session.testscollected += 1  # the audit is one more check (and progress stays <= 100 %)
    hook.pytest_runtest_logstart(nodeid=REPORT_ID, location=report.location)
    hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=REPORT_ID, location=report.location)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One line that says the audit ran and what it saw."""
    line = config.stash.get(_SUMMARY, None)
    if line is not None:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    audit = _audit_of(config)
    if audit is not None:
        audit.uninstall()
        del config.stash[_KEY]
