"""`python -m bench` (or `make bench`): how fast Conversant is next to the limits Slack and the model set.

Runs the production code paths against the test suite's fakes on 127.0.0.1,
on SQLite and on the PostgreSQL server named by BENCH_POSTGRES_URL (a database
of its own, dropped afterwards). Progress goes to stderr; the table (or, with
--json, one JSON object) to stdout. See BENCHMARKS.md for what each figure means.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from bench import drain, ingest, memory, prompts, stalled, web
from bench import digest as digest_stage
from bench.common import machine, progress, services_for, targets
from bot.config import Settings

STAGES = ("ingest", "drain", "web", "stalled", "memory", "digest")

GOALS = {  # key: (comparison, goal)
    "ingest_per_s.sqlite": (">=", 5000),
    "ingest_per_s.postgresql": (">=", 5000),
    "drain.ratio": (">=", 0.9),
    "ack_ms.p99": ("<=", 100),
    "stalled_ack_ms.p99": ("<=", 1000),  # 100 stalled connections; Slack gives up at 3,000
    "click_to_reply_ms.p50": ("<=", 300),
    "worker_rss_mb": ("<=", 150),
    "digest_ms.postgresql": ("<=", 1000),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure whose median is reported (default 3)")
    parser.add_argument("--only", default=",".join(STAGES), help=f"comma-separated stages: {', '.join(STAGES)}")
    parser.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both (default)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look (figures are not comparable)")
    parser.add_argument("--drain-mentions", type=int, default=1000)
    parser.add_argument("--drain-runs", type=int, default=1, help="runs of the drain per database (each takes about a minute)")
    parser.add_argument("--drain-max-seconds", type=float, help="stop a drain after this long (default: 4 x its lower bound); "
                        "the ratio is then extrapolated from the cards posted")
    parser.add_argument("--model-latency", type=float, default=0.3, help="seconds per draft (default 0.3)")
    parser.add_argument("--slack-rate", type=float, default=20.0, help="messages per second per channel (default 20)")
    parser.add_argument("--concurrency", type=int, default=Settings.openai_concurrency, help="OPENAI_CONCURRENCY (default: the product's)")
    parser.add_argument("--ingest-pages", type=int, default=200)
    parser.add_argument("--ack-rounds", type=int, default=4, help="rounds of 50 clicks in flight")
    parser.add_argument("--sequential-clicks", type=int, default=15)
    parser.add_argument("--stalled-clicks", type=int, default=30, help="clicks sent while 100 connections stall")
    parser.add_argument("--worker-conversations", type=int, default=100_000)
    parser.add_argument("--digest-conversations", type=int, default=1_000_000)
    parser.add_argument("--digest-days", type=float, default=365)
    args = parser.parse_args(argv)
    if args.quick:
        args.drain_mentions, args.ingest_pages, args.ack_rounds, args.sequential_clicks = 200, 50, 1, 5
        args.worker_conversations, args.digest_conversations, args.runs = 20_000, 100_000, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the product's warnings (rate limits...) are counted, not printed
    stages = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = stages - set(STAGES)
    if unknown:
        print(f"python -m bench: unknown stage(s) {', '.join(sorted(unknown))}; choose from {', '.join(STAGES)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    result: dict = {"machine": machine(), "setup": {
        "runs": args.runs, "drain_mentions": args.drain_mentions, "model_latency_s": args.model_latency,
        "slack_per_s": args.slack_rate, "openai_concurrency": args.concurrency, "quick": args.quick,
    }}
    with tempfile.TemporaryDirectory(prefix="conversant-bench-") as tmp:
        workdir = Path(tmp)
        found = targets(workdir, {d.strip() for d in args.databases.split(",")})
        result["databases"] = [t.name for t in found]
        progress(f"benchmarking on {', '.join(result['databases'])}; stages: {', '.join(s for s in STAGES if s in stages)}")
        if "ingest" in stages:
            result["ingest_per_s"], result["ingest"] = {}, {}
            for target in found:
                measured = ingest.run(target, lambda url: _bare_services(url), runs=args.runs, pages=args.ingest_pages)
                result["ingest_per_s"][target.name] = measured["per_s"]
                result["ingest"][target.name] = measured
        if "drain" in stages:
            by_db = {}
            for target in found:
                progress(f"drain on {target.name}: {args.drain_mentions} mentions, model {args.model_latency * 1000:.0f} ms, "
                         f"Slack {args.slack_rate:g}/s, OPENAI_CONCURRENCY {args.concurrency}")
                by_db[target.name] = drain.run(target, count=args.drain_mentions, latency=args.model_latency,
                                               rate=args.slack_rate, concurrency=args.concurrency, runs=args.drain_runs,
                                               max_seconds=args.drain_max_seconds)
            sent = next((d.pop("prompts") for d in by_db.values() if d.get("prompts")), [])
            for d in by_db.values():
                d.pop("prompts", None)
            worst = min(by_db.values(), key=lambda d: d["ratio"]) if by_db else {}
            result["drain"] = {"ratio": worst.get("ratio"), "seconds": worst.get("seconds"),
                               "lower_bound_s": worst.get("lower_bound_s"), "by_database": by_db}
            result["prompt_tokens_per_draft"] = prompts.measure(sent)
        if "web" in stages:
            by_db = {t.name: web.run(t, workdir, rounds=args.ack_rounds, sequential=args.sequential_clicks) for t in found}
            result["ack_ms"] = {"p50": _worst(by_db, "ack_ms", "p50"), "p99": _worst(by_db, "ack_ms", "p99"),
                                "by_database": {k: v["ack_ms"] for k, v in by_db.items()}}
            result["click_to_reply_ms"] = {"p50": _worst(by_db, "click_to_reply_ms", "p50"),
                                           "p90": _worst(by_db, "click_to_reply_ms", "p90"),
                                           "by_database": {k: v["click_to_reply_ms"] for k, v in by_db.items()}}
        if "stalled" in stages:
            by_db = {t.name: stalled.run(t, workdir, clicks=args.stalled_clicks) for t in found}
            result["stalled_ack_ms"] = {"p99": max(v["p99"] for v in by_db.values()), "by_database": by_db}
        if "memory" in stages:
            by_db = {t.name: memory.run(t, workdir, conversations=args.worker_conversations) for t in found}
            result["worker_rss_mb"] = max((v["rss_mb"] for v in by_db.values()), default=None)
            result["worker"] = {"rss_mb_by_database": {k: v["rss_mb"] for k, v in by_db.items()},
                                "conversations": args.worker_conversations,
                                "jobs_run": {k: v["jobs"] for k, v in by_db.items()}}
        if "digest" in stages:
            result["digest_ms"], result["digest"] = {}, {}
            for target in found:
                if target.name == "sqlite" and args.digest_conversations > 200_000:
                    continue  # a million rows through SQLite's inserts takes minutes; the goal is on PostgreSQL
                measured = digest_stage.run(target, conversations=args.digest_conversations, days=args.digest_days, runs=args.runs)
                result["digest_ms"][target.name] = measured["ms"]
                result["digest"][target.name] = measured
    result["goals"] = goals(result)
    result["seconds"] = round(time.monotonic() - started, 1)
    progress(f"done in {result['seconds']:.0f}s")
    if args.json:
        print(json.dumps(_rounded(result), indent=2))
    else:
        print(table(result))
    return 0


def _bare_services(url: str):
    """Services for stages that touch only the database (no fake is called)."""
    return services_for({"DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_REVIEW_CHANNEL": "C_REVIEW",
                         "SLACK_API_URL": "http://127.0.0.1:9/api/", "BRAND_NAME": "Brand", "LOG_LEVEL": "WARNING"})


def _worst(by_db: dict, key: str, field: str):
    values = [v[key][field] for v in by_db.values() if v[key].get(field) is not None]
    return max(values) if values else None


def lookup(result: dict, dotted: str):
    node = result
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def goals(result: dict) -> dict:
    out = {}
    for key, (op, goal) in GOALS.items():
        value = lookup(result, key)
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        out[key] = {"value": value, "goal": f"{op} {goal:,}", "met": met}
    return out


def _rounded(node):
    if isinstance(node, float):
        return round(node, 3) if abs(node) < 100 else round(node, 1)
    if isinstance(node, dict):
        return {k: _rounded(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rounded(v) for v in node]
    return node


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(result: dict) -> str:
    m = result["machine"]
    lines = [f"Conversant benchmark · {m['nproc']} CPUs ({m['cpu']}), {m['memory_mb']:,} MB · Python {m['python']} · "
             f"databases: {', '.join(result['databases'])} · {result['seconds']:.0f}s", ""]
    rows = [("figure", "value", "goal", "")]
    for key, g in result["goals"].items():
        status = "—" if g["met"] is None else ("ok" if g["met"] else "MISSED")
        rows.append((key, _fmt(g["value"]), g["goal"], status))
    tokens = result.get("prompt_tokens_per_draft") or {}
    if tokens:
        rows.append(("prompt_tokens_per_draft", _fmt(tokens["tokens"]), "report", ""))
        rows.append(("  stable prefix (share)", f"{tokens['stable_prefix_tokens']:,} ({tokens['stable_prefix_share']:.0%})", "first", ""))
        rows.append(("  cacheable by OpenAI", _fmt(tokens["cacheable_tokens"]), f"needs ≥ {tokens['cache_minimum']:,}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) if j == 0 else cell.rjust(widths[j]) for j, cell in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    details = []
    if result.get("drain"):
        for name, d in result["drain"]["by_database"].items():
            details.append(f"drain on {name}: {d['cards']} cards{'' if d['complete'] else ' (stopped early; ratio extrapolated)'} in {d['seconds']:.1f}s, bound {d['lower_bound_s']:.1f}s, "
                           f"first card after {_fmt(d['first_card_s'])}s, {d['cycles']} cycles, {d['slack_429']} Slack 429s")
    for name, a in (result.get("ack_ms") or {}).get("by_database", {}).items():
        c = result["click_to_reply_ms"]["by_database"][name]
        details.append(f"clicks on {name}: ack p50 {_fmt(a['p50'])} ms, p99 {_fmt(a['p99'])} ms, max {_fmt(a['max'])} ms "
                       f"({a['clicks']} clicks, {a['non_200']} not 200); click to reply p50 {_fmt(c['p50'])} ms, p90 {_fmt(c['p90'])} ms")
    for name, d in (result.get("digest") or {}).items():
        if d.get("ms") is not None:
            details.append(f"digest on {name}: {_fmt(d['ms'])} ms over {d['conversations']:,} conversations ({d['rows_read']:,} rows read); "
                           f"chart {_fmt(d['chart_ms'])} ms; Home's figures for today {_fmt(d['home_today_ms'])} ms; "
                           f"an idle poll cycle {_fmt(d['idle_cycle_ms'])} ms")
    if result.get("worker"):
        w = result["worker"]
        details.append("worker peak RSS: " + ", ".join(f"{k} {v:.0f} MB" for k, v in w["rss_mb_by_database"].items())
                       + f" with {w['conversations']:,} conversations stored")
    return "\n".join(lines + ([""] + details if details else []))


if __name__ == "__main__":
    sys.exit(main())
