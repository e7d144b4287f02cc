"""The container recipe without a container engine: scripts/container.sh, the script the Dockerfile
runs, installs into a fresh virtual environment as a user without privileges and starts the
processes the image runs. Slow (a full install), so `make test-container` runs it, and CI with it."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", ".lock-venv", "*.db", "*.db-*", "__pycache__", "*.egg-info",
                              "build", ".pytest_cache", ".env", "node_modules")


def _as_user() -> dict:
    """Run as nobody when the suite runs as root (CI); otherwise we are not root already."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """What the image's build stage makes: the source copied in, the venv installed by the script."""
    home = Path(tempfile.mkdtemp(prefix="conversant-container-"))
    shutil.copytree(ROOT, home / "src", ignore=SKIP)
    user = _as_user()
    if user:
        for path in [home, *home.rglob("*")]:
            os.chown(path, user["user"], user["group"], follow_symlinks=False)
    base_env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
                **{k: v for k, v in os.environ.items() if k.startswith("PIP_")}}
    result = subprocess.run(["sh", str(home / "src/scripts/container.sh"), "install", str(home / "src"), str(home / "venv")],
                            env=base_env, cwd=home, capture_output=True, text=True, timeout=1200, **user)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("conversant ")
    yield {"home": home, "env": {**base_env, "CONVERSANT_VENV": str(home / "venv")}, "user": user,
           "script": str(home / "src/scripts/container.sh")}
    shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def test_the_container_script_installs_migrates_and_serves_as_a_non_root_user(image, slack):
    port = _free_port()
    env = {**image["env"], "DATABASE_URL": f"sqlite:///{image['home'] / 'conversant.db'}", "PORT": str(port),
           "SLACK_BOT_TOKEN": "xoxb-container", "SLACK_SIGNING_SECRET": "container-secret",
           "SLACK_API_URL": slack.api_url, "SLACK_REVIEW_CHANNEL": "C_REVIEW", "BRAND_NAME": "Brand"}
    run = dict(env=env, cwd=image["home"], capture_output=True, text=True, timeout=120, **image["user"])

    unhealthy = subprocess.run(["sh", image["script"], "healthcheck"], **run)
    assert unhealthy.returncode != 0 and "unhealthy" in unhealthy.stderr

    migrated = subprocess.run(["sh", image["script"], "start", "migrate"], **run)
    assert migrated.returncode == 0, migrated.stderr
    assert "schema is up to date" in migrated.stdout

    web = subprocess.Popen(["sh", image["script"], "start", "web"], env=env, cwd=image["home"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, **image["user"])
    try:
        eventually(lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200, timeout=60)
        assert subprocess.run(["sh", image["script"], "healthcheck"], **run).returncode == 0
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert json.loads(body)["ok"] is True
    finally:
        web.send_signal(signal.SIGTERM)  # what `docker stop` sends (the script execs, so conversant gets it)
        output = web.communicate(timeout=60)[0]
    assert web.returncode == 0, output[-3000:]
