"""The one-way layout, checked on the source: no import cycle in bot/, and no domain module
imports Slack code (bot/slack/) or the layers above it. Imports inside functions count."""
from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"

# The domain: reads and writes the database, talks to platforms and the model, never to Slack.
DOMAIN = (
    "bot.models", "bot.db", "bot.config", "bot.text", "bot.business_hours", "bot.platforms", "bot.ingest",
    "bot.threads", "bot.bursts", "bot.llm", "bot.context", "bot.draft", "bot.examples", "bot.policy",
    "bot.decision", "bot.outbox", "bot.backlog", "bot.stats", "bot.redraft", "bot.evaluation", "bot.rulebook", "bot.similarity", "bot.knowledge",
    "bot.accounts", "bot.brand", "bot.routing", "bot.privacy", "bot.signoffs",
)
# What only the application layer may import: Slack, the use cases, the cycle, the jobs.
ABOVE_THE_DOMAIN = ("bot.slack", "bot.flows", "bot.pipeline", "bot.jobs", "bot.cli", "bot.demo")


def module_name(path: Path) -> str:
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in BOT.rglob("*.py")}


def imported(name: str) -> set[str]:
    """The bot modules that ``name`` imports anywhere in its source (functions included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name and t != "bot"}
    return found


GRAPH = {name: imported(name) for name in MODULES}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def in_layer(name: str, layer: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in layer)


def test_the_walk_sees_imports_inside_functions():
    assert "bot.pipeline" in GRAPH["bot.cli"]  # cli imports it inside cmd_poll


def test_there_is_no_import_cycle_in_bot():
    assert cycles() == []


def test_no_domain_module_imports_slack_or_the_layers_above():
    wrong = {name: sorted(t for t in targets if in_layer(t, ABOVE_THE_DOMAIN))
             for name, targets in GRAPH.items() if in_layer(name, DOMAIN)}
    assert {name: targets for name, targets in wrong.items() if targets} == {}


def test_domain_modules_take_the_database_and_their_collaborators_not_the_services_bag():
    assert sorted(name for name, targets in GRAPH.items() if in_layer(name, DOMAIN) and "bot.services" in targets) == []


def test_a_cycle_or_a_domain_import_of_slack_would_be_caught():
    GRAPH["bot.models"] = GRAPH["bot.models"] | {"bot.outbox", "bot.slack.sync"}
    try:
        assert any("bot.models" in c and "bot.outbox" in c for c in cycles())
        assert in_layer("bot.slack.sync", ABOVE_THE_DOMAIN) and in_layer("bot.models", DOMAIN)
    finally:
        GRAPH["bot.models"] = imported("bot.models")
