"""Judged comparisons: a model scores each differing pair against the user's rubric.

:func:`judge_report` sends every differing pair of a
:class:`~streaming_agents.replay.report_data.ComparisonReport` (the input, both
outputs, the fields that differ) to a judge model -- any litellm model -- and
attaches a :class:`~streaming_agents.replay.report_data.Verdict` to each case:
which side the rubric prefers (``production``, ``candidate`` or ``tie``) and
why.  The judge sees the two outputs as ``A`` and ``B`` in an order drawn
from the pair's identity (stable from run to run, independent of which side
is which), so a judge that favours the first answer does not favour one side.
Replies are structured output (JSON schema from :class:`JudgeReply`, checked
with pydantic); a reply that does not fit is ``not judged`` with the reason.

Calls go through the project's own LLM path: :class:`LiteLLMClient` (retries,
fallbacks, rate limits), the journal from the journal factory (agent
``judge``, version = the judge model; a pair judged before is answered from
the journal and costs nothing; every paid call is in the request record) and
an optional :class:`~streaming_agents.llm.budget.Budget` whose ledger is
reserved before each call and settled to the call's actual use after.  Pairs
are admitted in order before any call is made (journal first, then a
reservation), so which pairs a budget covers does not depend on timing; a
pair whose reservation is refused is ``not judged`` (reason ``over budget``):
never a failure of the report.  Reserving each call's maximum
(``Budget.reserve_tokens``) makes the budget a hard limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from streaming_agents.agent import LLMRequest, LLMResult, ModelSpec
from streaming_agents.errors import ConfigError, StreamingAgentsError
from streaming_agents.journal.base import ResultCache, request_digest
from streaming_agents.journal.factory import ledger_uri, open_journal, open_ledger, request_log
from streaming_agents.journal.ledger import BudgetLimits, Ledger, Reservation
from streaming_agents.llm.budget import Budget
from streaming_agents.replay.report_data import Case, ComparisonReport, Verdict

__all__ = [
    "JUDGE_AGENT",
    "JudgeReply",
    "JudgeStats",
    "add_judge_arguments",
    "apply_judge",
    "judge_options",
    "judge_report",
    "judge_request",
    "load_rubric",
]

JUDGE_AGENT = "judge"
_SYSTEM = """You compare two answers an AI agent gave to the same input.
Judge them only against the rubric below. The answers are labelled A and B; their
order was shuffled and says nothing about which one is newer or better.
Reply with JSON only: {{"preference": "A" | "B" | "tie", "reason": "one or two sentences"}}.

Rubric:
{rubric}"""


class JudgeReply(BaseModel):
    """The judge's structured reply."""

    preference: Literal["A", "B", "tie"]
    reason: str = Field(max_length=4000)


@dataclass
class JudgeStats:
    """What judging cost: calls paid, answers from the journal, tokens, USD."""

    calls: int = 0
    journal_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    over_budget: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"judge: {self.calls} calls paid, {self.journal_hits} answered from the journal, "
            f"{self.prompt_tokens + self.completion_tokens} tokens, {self.cost_usd:.6f} USD"
            + (f", {self.over_budget} not judged (over budget)" if self.over_budget else "")
            + (f", {self.failed} failed" if self.failed else "")
        )


def load_rubric(value: str) -> str:
    """The rubric: the text of the file ``value`` names, else ``value`` itself.

    A single word that is not a file is taken for a mistyped file name.
    """
    path = Path(value).expanduser()
    is_file = len(value) < 4096 and path.is_file()
    if not is_file and value.strip() and not any(ch.isspace() for ch in value.strip()):
        raise ConfigError(f"rubric file {value!r} not found (or give the rubric's text)")
    text = path.read_text(encoding="utf-8") if is_file else value
    if not text.strip():
        raise ConfigError("the judge's rubric is empty")
    return text.strip()


def _production_first(case: Case) -> bool:
    return hashlib.sha256(case.identity.encode()).digest()[0] % 2 == 0


def judge_request(case: Case, rubric: str) -> LLMRequest:
    """The request for one pair (see the module doc for the A/B order)."""
    first, second = (
        (case.production, case.candidate)
        if _production_first(case)
        else (case.candidate, case.production)
    )
    pair = {"input": case.input, "A": first, "B": second, "fields_that_differ": list(case.fields)}
    return LLMRequest(
        messages=(
            {"role": "system", "content": _SYSTEM.format(rubric=rubric)},
            {"role": "user", "content": json.dumps(pair, sort_keys=True, default=str)},
        ),
        response_schema=JudgeReply.model_json_schema(),
    )


def _verdict(case: Case, result: LLMResult, model: str, answered: str) -> Verdict:
    try:
        reply = JudgeReply.model_validate_json(result.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        return Verdict("not judged", f"reply does not fit the schema: {first['msg']}", model)
    if reply.preference == "tie":
        return Verdict("tie", reply.reason, model, answered)
    production = (reply.preference == "A") == _production_first(case)
    return Verdict("production" if production else "candidate", reply.reason, model, answered)


@dataclass(frozen=True)
class _Admitted:
    """A pair to pay a call for: its request, the request's digest, its reservation."""

    case: Case
    request: LLMRequest
    digest: str
    reservation: Reservation | None


class _Judge:
    """One judging run: client, journal, ledger and counters."""

    def __init__(self, spec: ModelSpec, rubric: str, journal: ResultCache,
                 budget: Budget | None, capacity: int) -> None:  # fmt: skip
        from streaming_agents.llm.litellm_client import LiteLLMClient
        from streaming_agents.llm.throttle import AdaptiveLimiter

        self.spec, self.rubric, self.budget = spec, rubric, budget
        self.client = LiteLLMClient(spec, AdaptiveLimiter(capacity))
        self.journal = journal
        self.requests = request_log(journal)
        self.ledger: Ledger | None = None
        if budget is not None:
            uri = ledger_uri(journal, budget.ledger_uri())
            self.ledger = open_ledger(uri, agent=JUDGE_AGENT, window_s=budget.window_s)
        self.stats = JudgeStats()

    def close(self) -> None:
        self.journal.close()
        if self.ledger is not None:
            self.ledger.close()

    def _estimate(self, request: LLMRequest) -> tuple[int, float]:
        budget, s = self.budget, self.stats
        assert budget is not None
        calls = max(1, s.calls)
        tokens = budget.reserve_tokens or (
            round((s.prompt_tokens + s.completion_tokens) / calls)
            if s.calls
            else len(request.canonical()) // 4 + 200
        )
        cost = budget.reserve_cost_usd
        cost = s.cost_usd / calls if cost is None else cost
        if budget.max_tokens is not None:
            tokens = min(tokens, budget.max_tokens)
        if budget.max_cost_usd is not None:
            cost = min(cost, budget.max_cost_usd)
        return max(1, tokens), cost

    async def _reserve(self, request: LLMRequest) -> Reservation | Literal[False] | None:
        """A reservation, ``None`` without a budget, ``False`` when the budget is spent."""
        if self.budget is None or self.ledger is None:
            return None
        limits = BudgetLimits(self.budget.max_tokens, self.budget.max_cost_usd)
        tokens, cost = self._estimate(request)
        granted = await self.ledger.reserve(JUDGE_AGENT, self.budget.window(), limits, tokens, cost)
        return False if granted is None else granted

    async def _settle(self, reservation: Reservation | None, result: LLMResult | None) -> None:
        if reservation is not None and self.ledger is not None:
            tokens = 0 if result is None else result.prompt_tokens + result.completion_tokens
            await self.ledger.settle(
                reservation, tokens, 0.0 if result is None else result.cost_usd
            )

    async def admit(self, case: Case) -> Verdict | _Admitted:
        """A verdict from the journal or ``over budget``; else the call to make."""
        request = judge_request(case, self.rubric)
        digest = request_digest(JUDGE_AGENT, case.key, self.spec, request)
        recorded = await self.journal.lookup(case.key, digest)
        if recorded is not None:
            self.stats.journal_hits += 1
            return _verdict(case, recorded, self.spec.model, "journal")
        reservation = await self._reserve(request)
        if reservation is False:
            self.stats.over_budget += 1
            return Verdict("not judged", "over budget", self.spec.model, "")
        return _Admitted(case, request, digest, reservation)

    async def call(self, admitted: _Admitted) -> Verdict:
        """Pay for the judge's answer on a pair: journalled and recorded before it is used."""
        case, request, digest = admitted.case, admitted.request, admitted.digest
        reservation = admitted.reservation
        try:
            result = await self.client.complete(request)
        except StreamingAgentsError as exc:
            self.stats.failed += 1
            await self._settle(reservation, None)
            return Verdict("not judged", f"judge call failed: {exc}", self.spec.model, "")
        await self.journal.append(case.key, digest, result)
        if self.requests is not None:
            self.requests.record_request(
                kind="llm", agent=JUDGE_AGENT, version=self.spec.model, key=case.key,
                turn=case.turn or 0, digest=digest, body=request.canonical(),
                event=json.dumps(case.input, default=str),
            )  # fmt: skip
        await self._settle(reservation, result)
        s = self.stats
        s.calls += 1
        s.prompt_tokens += result.prompt_tokens
        s.completion_tokens += result.completion_tokens
        s.cost_usd += result.cost_usd
        s.latencies_ms.append(result.latency_ms)
        return _verdict(case, result, self.spec.model, "called")

    async def judge_all(self, cases: list[Case]) -> list[Verdict]:
        """Admit the pairs in order (journal, then budget), then make the calls concurrently."""
        admitted = [await self.admit(case) for case in cases]
        calls = {
            i: self.call(slot) for i, slot in enumerate(admitted) if isinstance(slot, _Admitted)
        }
        paid = dict(zip(calls, await asyncio.gather(*calls.values()), strict=True))
        return [slot if isinstance(slot, Verdict) else paid[i] for i, slot in enumerate(admitted)]


def judge_report(
    report: ComparisonReport,
    spec: ModelSpec,
    rubric: str,
    *,
    journal: str | None = None,
    budget: Budget | None = None,
    capacity: int = 8,
) -> tuple[ComparisonReport, JudgeStats]:
    """``report`` with a verdict on each differing pair, and what judging cost.

    ``journal`` is a journal URI (``sqlite:///...``, ``kafka://...``, ``none``;
    ``None``: the environment's default, see the journal factory); ``budget``
    limits the judge's tokens/cost per window; ``capacity`` calls in flight.
    Only pairs both sides answered are judged (inputs one side lacks have
    nothing to compare).
    """
    from streaming_agents.sql import callloop

    if not rubric.strip():
        raise ConfigError("the judge needs a rubric (--rubric FILE or TEXT)")
    store = open_journal(journal, agent=JUDGE_AGENT, version=spec.model, job=JUDGE_AGENT)
    judge = _Judge(spec, rubric, store, budget, capacity)
    # The calls run on the project's call loop, which stops litellm's logging worker
    # cleanly when released (streaming_agents.sql.callloop).
    callloop.acquire()
    try:
        verdicts = asyncio.run(callloop.run(judge.judge_all(report.differing)))
    finally:
        callloop.release()
        judge.close()
    judged = replace(
        report,
        differing=[replace(c, verdict=v) for c, v in zip(report.differing, verdicts, strict=True)],
        judge_model=spec.model,
        rubric=rubric,
        notes=[*report.notes, judge.stats.describe()],
    )
    return judged, judge.stats


def judge_options(args: Any) -> dict[str, Any] | None:
    """``judge_report`` arguments from the CLI's ``--judge-*`` options (``None``: no judge)."""
    if not getattr(args, "judge_model", None):
        return None
    if not args.rubric:
        raise ConfigError("--judge-model needs --rubric FILE or TEXT")
    spec = ModelSpec(
        model=args.judge_model,
        api_base=args.judge_api_base,
        api_key_env=args.judge_api_key_env,
        params={"temperature": 0},
    )
    budget = None
    if args.judge_max_tokens or args.judge_max_cost:
        budget = Budget(
            max_tokens=args.judge_max_tokens,
            max_cost_usd=args.judge_max_cost,
            on_exceeded="dead_letter",
        )
    return {
        "spec": spec,
        "rubric": load_rubric(args.rubric),
        "journal": args.judge_journal,
        "budget": budget,
    }


def add_judge_arguments(parser: Any) -> None:
    """The ``--judge-*`` options of ``replay`` and ``compare``."""
    group = parser.add_argument_group("judge (optional): score each differing pair")
    options: list[tuple[str, str, str, Any]] = [
        ("--judge-model", "MODEL", "any litellm model, e.g. openai/gpt-4o-mini", str),
        ("--rubric", "FILE|TEXT", "what makes an answer better (a file, or the text)", str),
        ("--judge-api-base", "URL", "the judge model's API base", str),
        ("--judge-api-key-env", "VAR", "environment variable holding the judge's API key", str),
        ("--judge-journal", "URI", "journal of judge calls (default: the journal setting)", str),
        ("--judge-max-tokens", "N", "budget: judge tokens per hour", int),
        ("--judge-max-cost", "USD", "budget: judge cost per hour", float),
    ]
    for flag, metavar, text, kind in options:
        group.add_argument(flag, default=None, metavar=metavar, help=text, type=kind)


def apply_judge(
    args: Any, report: ComparisonReport, journal: str | None = None
) -> ComparisonReport:
    """Judge ``report`` when the CLI asked for it; ``journal``: default journal URI."""
    options = judge_options(args)
    if options is None:
        return report
    if options["journal"] is None:
        options["journal"] = journal
    judged, _ = judge_report(report, **options)
    return judged
