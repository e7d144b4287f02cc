"""Unit tests: pure functions, no database, no server. Snapshots live in ``snapshots/``;
``CONVERSANT_UPDATE_SNAPSHOTS=1`` rewrites them after a deliberate change (review the diff)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture
def snapshot():
    def check(name: str, value) -> None:
        path = SNAPSHOTS / f"{name}.json"
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        if os.environ.get("CONVERSANT_UPDATE_SNAPSHOTS"):
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"no snapshot {path.name} yet; write it with CONVERSANT_UPDATE_SNAPSHOTS=1"
        assert text == path.read_text(encoding="utf-8"), f"{path.name} changed; rerun with CONVERSANT_UPDATE_SNAPSHOTS=1 if intended"
    return check
