"""The comparison report people read, and judged comparisons.

No Flink here: outputs are built the way the agent operator writes them
(agent, version, usage with the model, source coordinates, trace ids, dead
letters with reasons), so every figure of the report can be derived by hand.
The judge runs against the project's fake LLM over real HTTP (model
``fake-judge``: prefers the answer matching the rubric's ``prefer:`` line), through
litellm, the journal and a budget ledger.  The last test runs ``compare`` as a
new process against a real broker and renders its HTML in headless Chromium
(``make browser``), keeping the screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streaming_agents.agent import ModelSpec
from streaming_agents.journal.factory import ledger_uri, open_journal, open_ledger
from streaming_agents.llm.budget import Budget
from streaming_agents.replay import compare_outputs, render_html, render_table
from streaming_agents.replay.judge import JUDGE_AGENT, judge_report
from streaming_agents.replay.report_data import RunInfo, headline
from streaming_agents.replay.textdiff import field_diffs, inline_diff
from streaming_agents.testing.browser import dump_dom, png_stats, screenshot
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import produce

RUBRIC = "Claims that mention fraud must be escalated.\nprefer: escalate"


def _out(
    key: str, seq: int, output: Any, *, version: str, model: str, latency: float, cost: float
) -> dict[str, Any]:
    return {
        "agent": "triage",
        "version": version,
        "key": key,
        "input": {"id": f"{key}-{seq}", "text": f"claim {seq} of {key}"},
        "output": output,
        "turn": seq,
        "usage": {
            "llm_calls": 1 + (version == "2" and seq == 2),
            "prompt_tokens": 40 + 10 * (version == "2"),
            "completion_tokens": 8,
            "cost_usd": cost,
            "latency_ms": latency,
            "model": model,
        },
        "source": {"topic": "claims", "partition": 0, "offset": 100 + seq * 10 + ord(key[-1]),
                   "timestamp_ms": 1_714_521_600_000 + seq * 60_000},
        "trace_id": f"{version}-{key}-{seq}".ljust(32, "0"),
    }  # fmt: skip


def history() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """4 keys x 3 turns; the outputs differ on 3 inputs; the candidate dead-letters 2 more."""
    prod, cand = [], []
    for key in ("k1", "k2", "k3", "k4"):
        for seq in (1, 2, 3):
            answer = {"route": "auto", "risk": 2, "note": f"claim {seq} looks fine"}
            prod.append(_out(key, seq, answer, version="1", model="gpt-4o-mini",
                             latency=100.0 + seq, cost=0.001))  # fmt: skip
            cand.append(_out(key, seq, dict(answer), version="2", model="gpt-4.1-mini",
                             latency=200.0 + seq, cost=0.002))  # fmt: skip
    cand[1]["output"] = {"route": "escalate", "risk": 2, "note": "claim 2 mentions fraud"}  # k1#2
    prod[4]["output"]["route"] = "escalate"  # k2#2: production escalated, the candidate not
    cand[4]["output"] = {"route": "auto", "risk": 3, "note": "claim 2 looks fine"}
    cand[8]["output"] = {"route": "auto", "risk": 2, "note": "claim 3 looks okay"}  # k3#3
    for i, reason in ((10, "llm call failed"), (11, "over budget")):  # k4#2, k4#3
        dead = cand[i]
        cand[i] = {"dead_letter": True, "reason": reason, "error": "x", "key": dead["key"],
                   "payload": dead["input"], "source": dead["source"], "agent": "triage",
                   "version": "2", "shadow": True}  # fmt: skip
    return prod, cand


# --------------------------------------------------------------------------- diffs


def test_inline_diff_marks_words_and_characters() -> None:
    left, right = inline_diff("claim 2 looks fine", "claim 2 looks okay")
    assert left == "claim 2 looks <del>fine</del>" and right == "claim 2 looks <ins>okay</ins>"
    left, right = inline_diff("amount 950", "amount 951")  # one word for one: characters
    assert left == "amount 95<del>0</del>" and right == "amount 95<ins>1</ins>"
    left, right = inline_diff("a <b>", "a <b> & more")
    assert left == "a &lt;b&gt;" and right == "a &lt;b&gt;<ins> &amp; more</ins>"
    diffs = field_diffs({"route": "auto", "risk": 2, "x": 1}, {"route": "auto", "risk": 3})
    assert [(d.field, d.missing) for d in diffs] == [("risk", ""), ("x", "candidate")]
    assert diffs[0].production_html == "<del>2</del>" and diffs[0].candidate_html == "<ins>3</ins>"
    assert [d.field for d in field_diffs("yes", "no")] == ["output"]


# --------------------------------------------------------------------------- report data


def test_report_metadata_timelines_and_the_same_headline_in_both_renderers() -> None:
    prod, cand = history()
    report = compare_outputs(prod, cand, production_topic="decisions", candidate_topic="shadow")
    assert (report.matched, report.agreed, len(report.differing)) == (10, 7, 3)
    assert dict(report.production_versions) == {"triage@1": 12}
    assert dict(report.candidate_versions) == {"triage@2": 12}  # dead letters included
    assert dict(report.candidate_models) == {"gpt-4.1-mini": 10}
    assert dict(report.dead_letter_reasons) == {"llm call failed": 1, "over budget": 1}
    assert report.production.cost_per_input == pytest.approx(0.001)
    assert report.candidate.cost_per_input == pytest.approx(0.002)
    assert report.input_range.startswith("offsets p0:[159,182]")  # k1#1 .. k4#3
    assert "2024-05-01T00:01:00+00:00 .. 2024-05-01T00:03:00+00:00" in report.input_range
    k1 = report.timelines["k1"]
    assert [(e.turn, e.status) for e in k1] == [(1, "agree"), (2, "differ"), (3, "agree")]
    assert k1[1].fields == ("note", "route") and k1[1].candidate_trace.startswith("2-k1-2")
    assert [e.status for e in report.timelines["k4"]] == ["agree", "dead letter", "dead letter"]
    report.run = RunInfo(
        range="claims p0:[150,190) (12 records)",
        memory_start="production's, from savepoint /sp/1",
        journal_given=True,
        divergences=[{"key": "k1", "turn": 2, "description": "key 'k1' turn 2: message 3"}],
    )
    text, page = render_table(report), render_html(report, "triage@2 vs production")
    figures = dict(headline(report))
    assert figures["memory start"] == "production's, from savepoint /sp/1"
    assert figures["candidate dead letters"] == "2 (llm call failed (1), over budget (1))"
    assert figures["cost per input (USD)"] == "production 0.001000, candidate 0.002000"
    for label, value in headline(report):
        assert re.search(rf"{re.escape(label)}\s+{re.escape(value)}", text), (label, text)
        assert f"<th>{label}</th><td>{value}</td>".replace("'", "&#x27;") in page, label
    assert "key 'k1' turn 2: message 3" in text
    for section in ("metadata", "agreement", "usage", "latency", "divergences", "cases",
                    "dead-letters", "only", "keys"):  # fmt: skip
        assert f'<section id="{section}">' in page, section
    # per-key drill-down: the differing case links to its key; trace ids of both sides
    assert page.count('<details id="key-') == 4 and "2-k1-2" in page and "1-k1-2" in page
    assert "claim 2 <del>looks fine</del>" in page and "<ins>mentions fraud</ins>" in page
    assert "latency per input, usage.latency_ms (ms)" in page  # the CDF's axis titles
    assert "inputs answered within x" in page
    assert page.count('aria-label="LLM calls"') == 1 and page.count('aria-label="Tokens"') == 1


def test_run_info_of_a_replay_names_its_range_memory_start_and_divergences() -> None:
    from streaming_agents.replay.divergence import Divergence
    from streaming_agents.replay.job import ReplayResult
    from streaming_agents.replay.memory_start import MemoryStart
    from streaming_agents.replay.ranges import ResolvedRange

    msg = {"role": "user", "content": "k1#2"}
    result = ReplayResult(
        run_id="triage-2-run", agent="triage", version="2", topic="claims",
        shadow_topic="shadow", range=ResolvedRange("claims", {0: (150, 190)}), outputs=10,
        dead_letters=2, llm_calls_made=4, fenced=[], journal_path="j", journal_given=True,
        divergences=[Divergence("triage", "k1", 2, {}, "messages", 3, msg, {**msg, "x": 1},
                                {"messages": []}, {"messages": []})],
        elapsed_s=3.0, run_dir="/tmp/x",
        memory_start=MemoryStart("savepoint", "/sp/1", "agent-triage", {0: 150}),
    )  # fmt: skip
    run = RunInfo.of_replay(result)
    assert run.range == "claims p0:[150,190) (40 records)"
    assert run.memory_start == result.memory_start.describe()
    assert run.memory_start and "savepoint /sp/1" in run.memory_start
    assert [d["key"] for d in run.divergences] == ["k1"]
    assert "message 3 differs" in run.divergences[0]["description"]
    empty = RunInfo.of_replay(ReplayResult(**{**result.__dict__, "memory_start": MemoryStart()}))
    prod, cand = history()
    report = compare_outputs(prod, cand)
    report.run = empty
    assert dict(headline(report))["memory start"].startswith("empty")
    assert dict(headline(report))["range"] == "claims p0:[150,190) (40 records)"
    assert dict(headline(report))["divergences from the record"] == "1 key"


# --------------------------------------------------------------------------- judge


def _expected_verdicts(report: Any) -> dict[str, str]:
    """What the rubric says: the side whose answer says "escalate" wins, else a tie."""
    out = {}
    for case in report.differing:
        p, c = ("escalate" in json.dumps(x) for x in (case.production, case.candidate))
        out[case.identity] = (
            "candidate" if c and not p else ("production" if p and not c else "tie")
        )
    return out


def _judge_spec(fake: FakeLLM) -> ModelSpec:
    return ModelSpec(model="openai/fake-judge", api_base=fake.base_url,
                     api_key_env="FAKE_LLM_API_KEY", params={"temperature": 0})  # fmt: skip


def test_judge_scores_each_pair_blind_journalled_and_budgeted(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    prod, cand = history()
    report = compare_outputs(prod, cand)
    journal = f"sqlite://{tmp_path / 'judge.sqlite'}"
    judged, stats = judge_report(report, _judge_spec(fake_llm), RUBRIC, journal=journal)
    expected = _expected_verdicts(report)
    assert sorted(expected.values()) == ["candidate", "production", "tie"]
    assert {c.identity: c.verdict.preference for c in judged.differing if c.verdict} == expected
    assert all(c.verdict and c.verdict.reason and c.verdict.answered == "called"
               for c in judged.differing)  # fmt: skip
    assert judged.verdicts == {"production": 1, "candidate": 1, "tie": 1, "not judged": 0}
    assert (stats.calls, stats.journal_hits) == (3, 0)
    assert fake_llm.stats()["chat_total"] == 3
    # blind: the judge never learns which answer is production's
    for body in fake_llm.requests(10):
        text = json.dumps(body["messages"])
        assert "production" not in text and "candidate" not in text
        assert body["response_format"]["type"] == "json_schema"
    # journalled: the request record has each call; judging again pays nothing
    store = open_journal(journal, agent=JUDGE_AGENT, version="openai/fake-judge", job="judge")
    assert len(store.recorded_requests(agent=JUDGE_AGENT, kind="llm")) == 3  # type: ignore[attr-defined]
    store.close()
    again, stats2 = judge_report(report, _judge_spec(fake_llm), RUBRIC, journal=journal)
    assert (stats2.calls, stats2.journal_hits) == (0, 3)
    assert fake_llm.stats()["chat_total"] == 3
    assert [(c.verdict.preference, c.verdict.reason) for c in again.differing if c.verdict] == [
        (c.verdict.preference, c.verdict.reason) for c in judged.differing if c.verdict
    ]
    assert {c.verdict.answered for c in again.differing if c.verdict} == {"journal"}
    text = render_table(again)
    assert "judge verdicts" in text and "candidate 1, production 1, tie 1" in text


def test_judge_budget_stops_judging_and_the_ledger_counts_every_call(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    prod, cand = history()
    report = compare_outputs(prod, cand)
    journal = f"sqlite://{tmp_path / 'judge.sqlite'}"
    # every call reserves 400 tokens: the budget admits 2 of the 3 pairs
    budget = Budget(max_tokens=800, reserve_tokens=400, on_exceeded="dead_letter")
    judged, stats = judge_report(
        report, _judge_spec(fake_llm), RUBRIC, journal=journal, budget=budget, capacity=1
    )
    assert (stats.calls, stats.over_budget) == (2, 1)
    assert judged.verdicts["not judged"] == 1
    assert [c.verdict.reason for c in judged.differing if c.verdict].count("over budget") == 1
    assert fake_llm.stats()["chat_total"] == 2
    ledger = open_ledger(ledger_uri(journal, None), agent=JUDGE_AGENT, window_s=budget.window_s)
    try:  # settled to what the two calls actually used
        spent_tokens, _ = ledger.spent(JUDGE_AGENT, budget.window())
    finally:
        ledger.close()
    assert spent_tokens == stats.prompt_tokens + stats.completion_tokens > 0


def test_unusable_judge_replies_are_not_judged_with_the_reason_and_not_kept(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    prod, cand = history()
    report = compare_outputs(prod, cand)
    fake_llm.configure(
        {
            "rules": [
                {"match": ".", "json": {"route": "approve"}},  # the agents' rule: not the judge's
                {"match": "k3-3", "reply": "I prefer A.", "model": "fake-judge"},
                {"match": "k2-2", "status": 400, "model": "openai/fake-judge"},
            ]
        }
    )
    journal = f"sqlite://{tmp_path / 'judge.sqlite'}"
    judged, stats = judge_report(report, _judge_spec(fake_llm), RUBRIC, journal=journal)
    verdicts = {c.key: c.verdict for c in judged.differing if c.verdict}
    assert verdicts["k1"].preference == "candidate"
    assert verdicts["k2"].preference == "not judged"
    assert verdicts["k2"].reason.startswith("judge call failed")
    assert verdicts["k3"].preference == "not judged"
    assert verdicts["k3"].reason.startswith("reply does not fit the schema")
    assert (stats.calls, stats.failed) == (2, 1)
    fake_llm.configure({})  # a working judge: the failed call is made again, the rest is kept
    fake_llm.reset()
    _, again = judge_report(report, _judge_spec(fake_llm), RUBRIC, journal=journal)
    assert (again.calls, again.journal_hits) == (1, 2)


def test_cli_judge_options_need_a_rubric_and_a_production_topic(capsys: Any) -> None:
    from streaming_agents.cli.main import main

    base = ["replay", "--agent", "x:y", "--topic", "t", "--shadow-topic", "s"]
    assert main([*base, "--judge-model", "openai/fake-judge"]) == 2
    assert "--judge-model need --production-topic" in capsys.readouterr().err
    assert main(["compare", "--bootstrap", "127.0.0.1:1", "--production", "p", "--candidate",
                 "c", "--judge-model", "openai/fake-judge"]) == 2  # fmt: skip
    assert "needs --rubric" in capsys.readouterr().err
    assert main(["compare", "--production", "p", "--candidate", "c", "--judge-model", "m",
                 "--rubric", "no-such-rubric.txt"]) == 2  # fmt: skip
    assert "rubric file 'no-such-rubric.txt' not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- browser


def _png(pixels: np.ndarray[Any, Any]) -> bytes:
    """An RGB PNG of ``pixels`` whose rows use filter types 0-4 in turn."""
    height, width, bpp = pixels.shape
    zero = np.zeros(bpp, dtype=np.int64)
    raw, prev = b"", np.zeros(width * bpp, dtype=np.int64)
    for y in range(height):
        row = pixels[y].reshape(-1).astype(np.int64)
        a = np.concatenate([zero, row[:-bpp]])
        c = np.concatenate([zero, prev[:-bpp]])
        p = a + prev - c
        pa, pb, pc = abs(p - a), abs(p - prev), abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, prev, c))
        kind = y % 5
        predicted = [0 * row, a, prev, (a + prev) // 2, paeth][kind]
        raw += bytes([kind]) + ((row - predicted) % 256).astype(np.uint8).tobytes()
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def test_png_decoder_undoes_every_filter_type(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pixels = np.full((40, 30, 3), 255, dtype=np.uint8)
    pixels[5:25, 3:20] = rng.integers(0, 256, size=(20, 17, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(_png(pixels))
    stats = png_stats(path)
    assert (stats.width, stats.height) == (30, 40)
    assert stats.variance == pytest.approx(pixels.astype(np.float64).mean(axis=2).var())
    assert stats.non_background == pytest.approx((20 * 17) / (40 * 30))
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((10, 10, 3), 255, dtype=np.uint8)))
    assert png_stats(blank).variance == 0.0 and png_stats(blank).non_background == 0.0


def _artifact_dir() -> Path:
    root = Path(os.environ.get("SA_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".run"))
    return root / "report-screenshots"


def test_compare_cli_with_judge_renders_in_headless_chromium(
    kafka_bootstrap: str, topic_factory: Any, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    prod, cand = history()
    prod_topic, cand_topic = topic_factory("decisions"), topic_factory("shadow")
    produce(kafka_bootstrap, prod_topic, [(o["key"], json.dumps(o)) for o in prod])
    produce(kafka_bootstrap, cand_topic, [(o["key"], json.dumps(o)) for o in cand])
    rubric = tmp_path / "rubric.txt"
    rubric.write_text(RUBRIC)
    html, data = tmp_path / "report.html", tmp_path / "report.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", "compare", "--bootstrap",
         kafka_bootstrap, "--production", prod_topic, "--candidate", cand_topic,
         "--html", str(html), "--json", str(data), "--judge-model", "openai/fake-judge",
         "--rubric", str(rubric), "--judge-api-base", fake_llm.base_url,
         "--judge-api-key-env", "FAKE_LLM_API_KEY",
         "--judge-journal", f"sqlite://{tmp_path / 'judge.sqlite'}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    cli_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "judge verdicts" in done.stdout and "candidate 1, production 1, tie 1" in done.stdout
    assert json.loads(data.read_text())["judge"]["verdicts"]["candidate"] == 1
    assert fake_llm.stats()["chat_total"] == 3

    started = time.monotonic()
    dom = dump_dom(html)
    for section in ("metadata", "agreement", "usage", "latency", "divergences", "cases",
                    "dead-letters", "only", "keys"):  # fmt: skip
        assert re.search(rf'<section id="{section}"', dom), section
    assert 'id="verdicts"' in dom and "judge: better: candidate" in dom
    assert "judge: better: production" in dom and "judge: tie" in dom
    assert dom.count("<svg") >= 5 and dom.count('<details id="key-') == 4
    png = screenshot(html, tmp_path / "report.png", width=1280, height=1800)
    stats = png_stats(png)
    browser_s = time.monotonic() - started
    keep = _artifact_dir() / "compare-report.png"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, keep)
    shutil.copyfile(html, keep.with_suffix(".html"))
    print(f"\nreport screenshot: {keep} (cli {cli_s:.1f} s, chromium {browser_s:.1f} s)")
    assert (stats.width, stats.height) == (1280, 1800)
    # not blank: text, tables and charts cover a good part of the page
    assert stats.variance > 100 and stats.non_background > 0.03, stats
