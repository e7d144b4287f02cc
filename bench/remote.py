"""The fakes in a process of their own, as the real services are.

Slack, the model and Bluesky are far away in production; here their fakes run
in a child process, so their work never competes with the code being
measured for the interpreter lock. The benchmark drives them through a pipe
with the operations below (each gets the three fakes and plain arguments).
"""
from __future__ import annotations

import multiprocessing
from contextlib import contextmanager

from bench.common import fakes, urls


def _post_backlog(slack, model, bluesky, count: int) -> None:
    from bench.workload import post_backlog

    post_backlog(bluesky, count)


def _drain_model(slack, model, bluesky, latency: float) -> None:
    from bench.workload import responder

    model.set_delay(latency)
    model.responder = responder


def _post_mentions(slack, model, bluesky, count: int, text: str, authors: int = 20) -> None:
    """``count`` mentions that do not read alike (similar ones would make one burst card)."""
    import random

    from bench.workload import words

    vocabulary, rng = words(5000, seed=11), random.Random(count)
    for i in range(authors):
        bluesky.add_account(f"fan{i}.test")
    for n in range(count):
        bluesky.post(f"fan{n % authors}.test", f"{text} {' '.join(rng.sample(vocabulary, 10))} (#{n})")


OPERATIONS = {
    "post_backlog": _post_backlog,
    "drain_model": _drain_model,
    "post_mentions": _post_mentions,
    "reply_with": lambda slack, model, bluesky, answer: model.reply_with(answer),
    "rate_limit": lambda slack, model, bluesky, method, per_second: slack.rate_limit(method, per_second),
    "platform_latency": lambda slack, model, bluesky, seconds: bluesky.set_latency(seconds),
    "accepted": lambda slack, model, bluesky: dict(slack.accepted_at),
    "rate_limited": lambda slack, model, bluesky: len(slack.rate_limited),
    "prompts": lambda slack, model, bluesky: [r["messages"] for r in model.chat_requests()],
    "replies": lambda slack, model, bluesky: list(bluesky.replies_at),
}


def _serve(conn) -> None:
    with fakes() as (slack, model, bluesky):
        conn.send(urls(slack, model, bluesky))
        while True:
            try:
                name, args = conn.recv()
            except EOFError:
                return
            if name == "stop":
                conn.send(("ok", None))
                return
            try:
                conn.send(("ok", OPERATIONS[name](slack, model, bluesky, *args)))
            except Exception as error:  # noqa: BLE001 - sent back and raised in the benchmark
                conn.send(("error", f"{type(error).__name__}: {error}"))


class RemoteFakes:
    def __init__(self, conn, process) -> None:
        self._conn = conn
        self._process = process
        self.urls: dict[str, str] = conn.recv()

    def call(self, name: str, *args):
        self._conn.send((name, args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"fake servers: {name} failed: {value}")
        return value


@contextmanager
def remote_fakes():
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child,), name="bench-fakes", daemon=True)
    process.start()
    try:
        yield RemoteFakes(parent, process)
        parent.send(("stop", ()))
        parent.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
