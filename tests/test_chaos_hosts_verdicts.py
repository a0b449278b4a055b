"""The verdicts of the two-host harness modes (``chaos.hosts --rescale`` / ``--budget``).

The runs themselves take about 5 min each (not in ``make test``; figures in
docs/design.md); these check what they judge: the budget's stated bound and
its verdict, the rescale verdict's "paid again <= in flight at the stops".
"""

from __future__ import annotations

from streaming_agents.chaos.budget import BudgetFigures, render_budget
from streaming_agents.chaos.rescale import RescaleFigures, render_rescale


def _budget(**kw: object) -> BudgetFigures:
    figures = BudgetFigures(budget=6_000, reserve=120)
    values: dict[str, object] = {
        "inputs": 100, "outputs": 60, "over_budget": 40, "largest_call": 82,
        "spent_by_window": {1: 0, 2: 5_892}, "output_tokens": 5_892,
        "placement": ["tm-a", "tm-b"],
    }  # fmt: skip
    values.update(kw)
    for name, value in values.items():
        setattr(figures, name, value)
    return figures


def test_budget_bound_is_the_budget_when_each_call_reserves_its_maximum() -> None:
    assert _budget().bound == 6_000 and _budget().ok
    # a call larger than its reservation: each of the 2 x 100 calls in flight may overshoot
    assert _budget(reserve=60, largest_call=89).bound == 6_000 + 200 * 29


def test_budget_verdict_fails_on_overshoot_loss_one_host_or_unsettled_spend() -> None:
    assert not _budget(spent_by_window={2: 6_001}, output_tokens=6_001).ok
    assert not _budget(lost=1).ok
    assert not _budget(placement=["tm-a", "tm-a"]).ok, "both subtasks on one host"
    assert not _budget(output_tokens=5_000).ok, "ledger and outputs disagree"
    assert not _budget(over_budget=0).ok, "the budget never stopped anything"
    assert "BUDGET VERDICT: FAIL" in render_budget(_budget(duplicated=1))


def test_rescale_verdict_allows_only_the_calls_in_flight_to_be_paid_again() -> None:
    f = RescaleFigures(inputs=2_014, outputs=2_014, requests_total=2_014, requests_distinct=2_014,
                       in_flight_at_stops=[0, 3], journal_hits=341)  # fmt: skip
    assert f.ok and "RESCALE VERDICT: PASS" in render_rescale(f)
    f.requests_total = 2_017
    assert f.ok, "3 repeats for 3 calls in flight"
    f.requests_total = 2_018
    assert not f.ok and "RESCALE VERDICT: FAIL" in render_rescale(f)
    f.requests_total, f.wrong_turns = 2_014, 1
    assert not f.ok
