"""What every stage of the benchmark shares: progress lines, statistics, databases, fakes, services.

Everything runs on 127.0.0.1: the fakes are the test suite's (``tests/fakes``),
the databases are a fresh SQLite file and a database of our own on the
PostgreSQL server named by ``BENCH_POSTGRES_URL`` (created, then dropped).
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.config import load_settings
from bot.db import migrate, normalise_url
from bot.services import build_services
from tests.fakes.bluesky_pds import _ROUTES as BLUESKY_METHODS
from tests.fakes.bluesky_pds import FakeBluesky
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

PG_ENV = "BENCH_POSTGRES_URL"
SIGNING_SECRET = "bench-signing-secret-0123456789"
APPROVER = "U_BENCH"
BRAND = "brand.test"

_started = time.monotonic()


# -- output -------------------------------------------------------------------------


def progress(message: str) -> None:
    """One line on stderr, so ``--json`` keeps stdout clean."""
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, share: float) -> float | None:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_mb": memory_mb, "cpu": cpu, "python": platform.python_version()}


# -- databases ----------------------------------------------------------------------


@dataclass
class Target:
    """One database kind the stages run on."""

    name: str  # "sqlite" | "postgresql"
    base: str | None = None  # the server URL for PostgreSQL
    workdir: Path | None = None

    @contextmanager
    def fresh(self, label: str):
        """A new, migrated, empty database; removed afterwards."""
        if self.name == "sqlite":
            path = self.workdir / f"{label}-{uuid.uuid4().hex[:8]}.db"
            url = f"sqlite:///{path}"
            migrate(url)
            try:
                yield url
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = f"conversant_bench_{os.getpid()}_{label}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(normalise_url(self.base), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = self.base.rsplit("/", 1)[0] + "/" + name
            migrate(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def targets(workdir: Path, wanted: set[str]) -> list[Target]:
    """SQLite always; PostgreSQL when BENCH_POSTGRES_URL is set and answers (else one clear line)."""
    found = [Target("sqlite", workdir=workdir)] if "sqlite" in wanted else []
    if "postgresql" not in wanted:
        return found
    base = os.environ.get(PG_ENV)
    if not base:
        progress(f"PostgreSQL skipped: {PG_ENV} is not set (e.g. postgresql://conversant:conversant@127.0.0.1:5432/conversant_test)")
        return found
    try:
        engine = create_engine(normalise_url(base), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means: skip PostgreSQL, say why in one line
        reason = str(getattr(error, "orig", None) or error).splitlines()[0][:160]
        progress(f"PostgreSQL skipped: {PG_ENV} does not answer ({reason})")
        return found
    return found + [Target("postgresql", base=base)]


# -- fakes --------------------------------------------------------------------------


class BenchSlack(FakeSlack):
    """FakeSlack that also notes when each card (``chat.postMessage``) was accepted."""

    def __init__(self) -> None:
        self.accepted_at: dict[tuple[str, str], float] = {}  # (channel, ts) -> monotonic time
        super().__init__()

    def handle(self, request):
        response = super().handle(request)
        body = response.body if isinstance(response.body, dict) else {}
        if request.path == "/api/chat.postMessage" and body.get("ok"):
            with self._state:
                self.accepted_at[(body["channel"], body["ts"])] = time.monotonic()
        return response


class BenchBluesky(FakeBluesky):
    """FakeBluesky with one latency for every method, noting when each reply was stored."""

    def __init__(self) -> None:
        self.replies_at: list[tuple[float, str]] = []  # (monotonic time, parent uri)
        super().__init__()

    def set_latency(self, seconds: float) -> None:
        for nsid in BLUESKY_METHODS:
            self.set_delay(nsid, seconds)

    def handle(self, request):
        response = super().handle(request)
        if request.path == "/xrpc/com.atproto.repo.createRecord" and response.status == 200:
            parent = ((request.json().get("record") or {}).get("reply") or {}).get("parent", {}).get("uri")
            with self._state:
                self.replies_at.append((time.monotonic(), parent))
        return response


@contextmanager
def fakes():
    with BenchSlack() as slack, FakeOpenAI() as model, BenchBluesky() as bluesky:
        bluesky.add_account(BRAND, password="brand-app-password", display_name="Brand")
        yield slack, model, bluesky


def urls(slack: FakeSlack, model: FakeOpenAI, bluesky: FakeBluesky) -> dict[str, str]:
    return {"slack": slack.api_url, "model": model.api_url, "bluesky": bluesky.base_url}


def environment(url: str, fake_urls: dict[str, str], **overrides: str) -> dict[str, str]:
    """The variables an operator would set, pointing at the fakes."""
    return {
        "DATABASE_URL": url,
        "SLACK_BOT_TOKEN": "xoxb-bench-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_urls["slack"],
        "SLACK_REVIEW_CHANNEL": "C_REVIEW",
        "SLACK_DIGEST_CHANNEL": "C_DIGEST",
        "SLACK_APPROVERS": APPROVER,
        "OPENAI_API_KEY": "sk-bench-key",
        "OPENAI_BASE_URL": fake_urls["model"],
        "BRAND_NAME": "Brand",
        "BRAND_ALLOWED_DOMAINS": "brand.example",
        "BLUESKY_HANDLE": BRAND,
        "BLUESKY_APP_PASSWORD": "brand-app-password",
        "BLUESKY_PDS_URL": fake_urls["bluesky"],
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


def services_for(env: dict[str, str], **kwargs):
    return build_services(load_settings(env, dotenv_path="/nonexistent/.env"), **kwargs)


class Sampler:
    """Peak resident memory of a process, read from /proc while it runs."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.read()
            self._stop.wait(every)

    def read(self) -> None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(("VmHWM:", "VmRSS:")):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def stop(self) -> float:
        self.read()
        self._stop.set()
        self._thread.join(2)
        return self.peak_kb / 1024
