"""The protocol's glossary is generated from its suite file, never typed: the budgets it states are those
suites/leaderboard.yaml runs, and the board prints them only beside entries of that very suite."""
from __future__ import annotations

from pathlib import Path

import yaml

from benchmark import PROTOCOL_VERSION
from benchmark.attacks.standard import DEFAULTS
from benchmark.board.references import protocol_notes
from benchmark.spec.suite import load_suite
from benchmark.submission.protocol_text import describe, write_protocol

PROTOCOL = Path(__file__).resolve().parents[2] / "suites" / "leaderboard.yaml"


def test_the_glossary_states_the_budgets_the_protocol_file_runs():
    raw = yaml.safe_load(PROTOCOL.read_text())
    rank = raw["leaderboard"]["rank_by"]
    spec = next(a for a in raw["attacks"] if a.get("label", a["name"]) == rank["attack"])
    budget = {**DEFAULTS, **spec.get("params", {})}
    said = describe(load_suite(PROTOCOL))
    rank_text = said["rank metric"]
    assert f"{budget['steps']} steps × {budget['restarts']} restart(s)" in rank_text
    assert f"FAB-{budget['fab_steps']}" in rank_text and f"{budget['queries']} queries" in rank_text
    assert "5000" not in rank_text or budget["queries"] == 5000  # not AutoAttack's full budget unless it runs
    kinds = [a["params"]["kind"] for a in raw["attacks"] if a["name"] == "corruption"]
    assert all(k in said["corruption mCE"] for k in kinds) and "severities run: [3]" in said["corruption mCE"]
    assert "false_reassurance" in said["operating point"] and "95 % specificity" in said["operating point"]


def test_the_board_prints_the_notes_of_its_own_suite_only(tmp_path):
    suite = load_suite(PROTOCOL)
    write_protocol(tmp_path / f"v{PROTOCOL_VERSION}", suite, PROTOCOL_VERSION)
    mine = [{"provenance": {"suite_hash": suite.content_hash}}]
    notes = dict(protocol_notes(tmp_path, PROTOCOL_VERSION, mine))
    assert notes["rank metric"] == describe(suite)["rank metric"]
    other = protocol_notes(tmp_path, PROTOCOL_VERSION, [{"provenance": {"suite_hash": "0" * 16}}])
    assert len(other) == 1 and "not shown" in other[0][1]
    assert protocol_notes(tmp_path, "99", mine) == []
