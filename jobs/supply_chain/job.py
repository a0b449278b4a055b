"""Proactive supply-chain disruption: positions + stock + weather -> key_by region -> agent.

Three input topics are unioned: shipment positions, warehouse stock levels and
weather alerts.  Each record is tagged with its type and keyed by ``region``,
so one agent instance per region sees everything that happens there.  The
region's situation (shipments under way, stock per warehouse and SKU, weather
alerts in force, recent actions) is the agent's memory (:class:`RegionContext`,
keyed Flink state), so a shipment position is judged with the storm announced
an hour earlier in view.

For every input record the agent emits one :class:`Assessment` (risk, corrective
actions, notifications) inside the runtime's envelope on the actions topic;
each notification is also written on its own to the notifications topic.
Records it cannot use go to the dead-letter topic.  All sinks are exactly-once.

Flink workers cannot import the top-level ``jobs`` package, so this module
registers itself with cloudpickle to be shipped by value.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import cloudpickle  # type: ignore[import-untyped]
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from streaming_agents import Agent, Journal, LLMRequest, LLMResult, Memory, ModelSpec

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity

cloudpickle.register_pickle_by_value(sys.modules[__name__])

__all__ = [
    "AGENT_NAME",
    "SEVERE",
    "SYSTEM_PROMPT",
    "Action",
    "Assessment",
    "Notification",
    "RegionContext",
    "ShipmentPosition",
    "StockLevel",
    "WeatherAlert",
    "build",
    "notifications_of",
    "parse_event",
    "render_event",
    "supply_chain_agent",
]

AGENT_NAME = "supply-chain"
INPUT_ROLES = (("positions", "position"), ("stock", "stock"), ("weather", "weather"))
"""Input topic roles and the ``type`` each adds to its events."""
"""The key of records without a ``region`` (they are dead-lettered)."""
SEVERE = ("severe", "extreme")
"""Weather severities that threaten shipments and stock."""
MAX_RECENT_ACTIONS = 10

SYSTEM_PROMPT = """\
You are a supply-chain control tower for one region. You get one new event at a time \
(a shipment position, a warehouse stock level or a weather alert) together with what is \
known about the region: shipments under way, stock below its reorder point, weather \
alerts in force, and the actions taken recently.

Decide the risk the event reveals (low, medium, high) and the corrective actions: \
"hold_shipments" or "reroute" when severe weather threatens shipments, \
"expedite_replenishment" when stock falls below its reorder point, "transfer_stock" from \
another region when replenishment is blocked by severe weather, "notify_customer" for a \
delayed delivery, "monitor" for a minor risk, "none" otherwise. Leave "target" empty to \
act on the event's own shipment, warehouse or region. Add notifications for the people \
who must act (logistics, warehouse, customer). Answer with JSON matching the schema only."""

Risk = Literal["low", "medium", "high"]
ActionKind = Literal[
    "none",
    "monitor",
    "hold_shipments",
    "reroute",
    "expedite_replenishment",
    "transfer_stock",
    "notify_customer",
]
Audience = Literal["logistics", "warehouse", "customer"]


# --------------------------------------------------------------------------- inputs


class ShipmentPosition(BaseModel):
    """``shipment-positions``: where a shipment is and how it is doing."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["position"] = "position"
    shipment_id: str = Field(min_length=1)
    region: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    status: Literal["in_transit", "delayed", "at_port", "delivered"]
    destination: str = Field(min_length=1, description="the receiving warehouse")
    sku: str
    quantity: int = Field(ge=0)
    eta: AwareDatetime
    ts: AwareDatetime

    @property
    def event_id(self) -> str:
        return self.shipment_id


class StockLevel(BaseModel):
    """``warehouse-stock``: the stock of one SKU in one warehouse."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["stock"] = "stock"
    warehouse_id: str = Field(min_length=1)
    region: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    on_hand: int = Field(ge=0)
    reorder_point: int = Field(ge=0)
    ts: AwareDatetime

    @property
    def event_id(self) -> str:
        return f"{self.warehouse_id}/{self.sku}"

    @property
    def below_reorder_point(self) -> bool:
        return self.on_hand < self.reorder_point


class WeatherAlert(BaseModel):
    """``weather-alerts``: a weather warning for a region, in force until ``ends_at``."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["weather"] = "weather"
    alert_id: str = Field(min_length=1)
    region: str = Field(min_length=1)
    kind: Literal["storm", "flood", "snow", "heat", "fog"]
    severity: Literal["minor", "moderate", "severe", "extreme"]
    headline: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    ts: AwareDatetime

    @property
    def event_id(self) -> str:
        return self.alert_id


Event = Annotated[ShipmentPosition | StockLevel | WeatherAlert, Field(discriminator="type")]
_EVENT = TypeAdapter(Event)


def parse_event(event: Any) -> ShipmentPosition | StockLevel | WeatherAlert:
    """The typed event (raises ``ValidationError`` for anything else: dead-lettered)."""
    return _EVENT.validate_python(event)


# --------------------------------------------------------------------------- memory


class ShipmentState(BaseModel):
    status: str
    destination: str
    sku: str
    quantity: int
    eta: AwareDatetime


class StockState(BaseModel):
    on_hand: int
    reorder_point: int


class AlertState(BaseModel):
    kind: str
    severity: str
    headline: str
    ends_at: AwareDatetime


class RegionContext(Memory):
    """What the agent knows about its region (the memory of one key)."""

    SCHEMA_VERSION: ClassVar[int] = 1
    shipments: dict[str, ShipmentState] = Field(default_factory=dict)
    stock: dict[str, StockState] = Field(default_factory=dict)
    alerts: dict[str, AlertState] = Field(default_factory=dict)
    recent_actions: list[str] = Field(default_factory=list)

    def apply(self, event: ShipmentPosition | StockLevel | WeatherAlert) -> RegionContext:
        """The context with ``event`` taken in (delivered shipments and expired alerts dropped)."""
        shipments, stock = dict(self.shipments), dict(self.stock)
        alerts = {k: a for k, a in self.alerts.items() if a.ends_at > event.ts}
        if isinstance(event, ShipmentPosition):
            if event.status == "delivered":
                shipments.pop(event.shipment_id, None)
            else:
                shipments[event.shipment_id] = ShipmentState(
                    status=event.status,
                    destination=event.destination,
                    sku=event.sku,
                    quantity=event.quantity,
                    eta=event.eta,
                )
        elif isinstance(event, StockLevel):
            stock[event.event_id] = StockState(
                on_hand=event.on_hand, reorder_point=event.reorder_point
            )
        elif event.ends_at > event.ts:
            alerts[event.alert_id] = AlertState(
                kind=event.kind,
                severity=event.severity,
                headline=event.headline,
                ends_at=event.ends_at,
            )
        return self.model_copy(update={"shipments": shipments, "stock": stock, "alerts": alerts})

    def severe_alerts(self) -> list[str]:
        """Ids of alerts in force with severity severe or extreme, sorted."""
        return sorted(k for k, a in self.alerts.items() if a.severity in SEVERE)

    def low_stock(self) -> list[str]:
        """``warehouse/sku`` entries below their reorder point, sorted."""
        return sorted(k for k, s in self.stock.items() if s.on_hand < s.reorder_point)


# --------------------------------------------------------------------------- output


class Action(BaseModel):
    kind: ActionKind
    target: str = Field(
        default="", description="shipment, warehouse or region; empty = the event's"
    )
    detail: str = ""


class Notification(BaseModel):
    audience: Audience
    message: str


class Assessment(BaseModel):
    """The agent's reply (and, with ids filled in, its output) for one event."""

    risk: Risk
    actions: list[Action]
    notifications: list[Notification] = Field(default_factory=list)
    summary: str = ""


def render_event(event: ShipmentPosition | StockLevel | WeatherAlert, ctx: RegionContext) -> str:
    """The user message: the new event, then the region's context (after the event).

    The fake LLM's rules match on the ``New event`` and ``Severe weather in force`` lines.
    """
    if isinstance(event, ShipmentPosition):
        line = (
            f"shipment position {event.shipment_id}: status {event.status}, "
            f"{event.quantity} x {event.sku} to {event.destination}, eta {event.eta.isoformat()}, "
            f"at {event.lat:.3f},{event.lon:.3f}"
        )
    elif isinstance(event, StockLevel):
        state = "BELOW reorder point" if event.below_reorder_point else "ok"
        line = (
            f"stock level {event.event_id}: on hand {event.on_hand}, "
            f"reorder point {event.reorder_point} ({state})"
        )
    else:
        line = (
            f"weather alert {event.alert_id}: {event.kind}, severity {event.severity}, "
            f"until {event.ends_at.isoformat()}: {event.headline}"
        )
    severe = ctx.severe_alerts()
    alerts = [f"{k} {ctx.alerts[k].kind} ({ctx.alerts[k].severity})" for k in severe]
    shipments = [f"{k} {s.status} to {s.destination}" for k, s in sorted(ctx.shipments.items())]
    return "\n".join(
        [
            f"Region: {event.region}",
            f"Time: {event.ts.isoformat()}",
            f"New event: {line}",
            f"Severe weather in force: {', '.join(alerts) or 'none'}",
            f"Shipments under way: {', '.join(shipments) or 'none'}",
            f"Stock below reorder point: {', '.join(ctx.low_stock()) or 'none'}",
            f"Recent actions: {'; '.join(ctx.recent_actions) or 'none'}",
        ]
    )


def _step(event: Any, memory: RegionContext) -> LLMRequest:
    typed = parse_event(event)
    context = memory.apply(typed)
    messages = (
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": render_event(typed, context)},
    )
    return LLMRequest(messages=messages, response_schema=Assessment.model_json_schema())


def _own_target(event: ShipmentPosition | StockLevel | WeatherAlert) -> str:
    """What an action without a target acts on: the shipment, the warehouse or the region."""
    if isinstance(event, ShipmentPosition):
        return event.shipment_id
    if isinstance(event, StockLevel):
        return event.warehouse_id
    return event.region


def _reduce(
    event: Any, memory: RegionContext, result: LLMResult
) -> tuple[RegionContext, list[Any]]:
    typed = parse_event(event)
    context = memory.apply(typed)
    assessment = Assessment.model_validate_json(result.content)
    own = _own_target(typed)
    actions = [a.model_copy(update={"target": a.target or own}) for a in assessment.actions]
    taken = [f"{a.kind} {a.target}" for a in actions if a.kind != "none"]
    recent = [*context.recent_actions, *taken][-MAX_RECENT_ACTIONS:]
    context = context.model_copy(
        update={"recent_actions": recent, "turn_count": memory.turn_count + 1}
    )
    output = {
        "region": typed.region,
        "event_type": typed.type,
        "event_id": typed.event_id,
        "ts": typed.ts.isoformat(),
        "risk": assessment.risk,
        "actions": [a.model_dump(mode="json") for a in actions],
        "notifications": [n.model_dump(mode="json") for n in assessment.notifications],
        "summary": assessment.summary,
        "context": {
            "severe_alerts": context.severe_alerts(),
            "shipments": sorted(context.shipments),
            "low_stock": context.low_stock(),
        },
    }
    return context, [output]


def supply_chain_agent(model: ModelSpec) -> Agent[RegionContext]:
    """The region agent (memory: :class:`RegionContext`)."""
    return Agent(
        name=AGENT_NAME,
        version="1",
        model=model,
        system_prompt=SYSTEM_PROMPT,
        memory=RegionContext,
        output_schema=Assessment,
        step_fn=_step,
        reduce_fn=_reduce,
    )


# --------------------------------------------------------------------------- wiring


def notifications_of(line: str) -> list[str]:
    """The notifications of one agent output line, one JSON record each."""
    record = json.loads(line)
    out = record["output"]
    return [
        json.dumps(
            {
                "region": out["region"],
                "event_type": out["event_type"],
                "event_id": out["event_id"],
                "risk": out["risk"],
                "audience": note["audience"],
                "message": note["message"],
                "trace_id": record.get("trace_id", ""),
            }
        )
        for note in out["notifications"]
    ]


def build(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    topics: dict[str, str],
    model: ModelSpec,
    *,
    bounded: bool = False,
    group_id: str = "supply-chain",
    journal: Journal | None = None,
    capacity: int = 100,
    properties: Mapping[str, str] | None = None,
    security: KafkaSecurity | None = None,
) -> None:
    """Add the job to ``env``.

    ``topics`` maps the roles ``positions``, ``stock``, ``weather`` (inputs) and
    ``actions``, ``notifications``, ``dlq`` (outputs) to topic names.
    """
    from pyflink.common import Types

    from streaming_agents.connectors.kafka import exactly_once_sink
    from streaming_agents.pipeline import AgentPipeline

    inputs = {kind: topics[role] for role, kind in INPUT_ROLES}
    streams = (
        AgentPipeline.from_kafka(
            env,
            bootstrap,
            inputs,
            group_id,
            role_field="type",
            bounded=bounded,
            properties=properties,
            security=security,
            name="supply-events",
        )
        .key_by("region")
        .apply(supply_chain_agent(model), capacity=capacity, journal=journal)
    )
    prefix = f"supply-chain-{topics['actions']}"
    streams.to_kafka(
        bootstrap,
        outputs=topics["actions"],
        dead_letters=topics["dlq"],
        transactional_id_prefix=prefix,
        properties=properties,
        security=security,
    )
    (
        streams.outputs.flat_map(notifications_of, output_type=Types.STRING())
        .name("notifications")
        .uid("notifications")
        .sink_to(
            exactly_once_sink(
                bootstrap,
                topics["notifications"],
                f"{prefix}-notify",
                properties=dict(properties) if properties else None,
                security=security,
            )
        )
        .name("notifications-sink")
        .uid("sink-notifications")
    )
