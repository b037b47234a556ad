"""Usage ingestion: validate a batch of events and insert them exactly once (unique per account and key)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account
from billing.models import UsageEvent, UsagePeriod, UsagePeriodState, UsageRollup
from billing.usage.periods import (
    MISSING,
    UsageContext,
    context_cache_key,
    finality_window,
    usage_context_cached,
    usage_periods_create,
)
from billing.usage.thresholds import usage_thresholds_check

MAX_BATCH = 1000

MAX_KEY_LENGTH = 255

MAX_QUANTITY = 1_000_000  # per event; a larger report is almost surely a bug in the caller

# Callers' clocks drift: an event up to this far in our future is taken as "now-ish", not refused.
FUTURE_TOLERANCE = timedelta(minutes=5)

EVENT_FIELDS = frozenset({"account", "metric", "quantity", "occurred_at", "idempotency_key"})


@dataclass(frozen=True)
class Refusal:
    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict:
        return {"code": self.code, "field": self.field, "message": self.message}


class _Event:
    # A plain class with slots: one is made per accepted event, and a dataclass's __init__ costs more.
    __slots__ = (
        "account_id",
        "index",
        "key",
        "metric",
        "occurred_at",
        "outside",
        "period_end",
        "period_start",
        "quantity",
    )

    def __init__(self, index, account_id, metric, quantity, occurred_at, key):
        self.index = index
        self.account_id = account_id
        self.metric = metric
        self.quantity = quantity
        self.occurred_at = occurred_at
        self.key = key
        self.period_start = self.period_end = None
        # Outside the current subscription (before it started, after it ended): only a stored period
        # containing the event takes it (a late event of a replaced or canceled subscription); this
        # refusal is given otherwise.
        self.outside: Refusal | None = None


def _parse_time(value) -> datetime | Refusal:
    if not isinstance(value, str):
        return Refusal("invalid_occurred_at", "occurred_at", "Give occurred_at as an ISO 8601 string.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return Refusal("invalid_occurred_at", "occurred_at", f"occurred_at {value[:40]!r} is not an ISO 8601 time.")
    if moment.tzinfo is None:
        return Refusal(
            "invalid_occurred_at", "occurred_at", "occurred_at needs a time zone (e.g. 2026-11-24T10:00:00Z)."
        )
    return moment.astimezone(UTC)


def _check_shape(raw, index: int, default_account_id: int | None) -> _Event | Refusal:
    """The event's own fields, without looking anything up."""
    if not isinstance(raw, dict):
        return Refusal("invalid_event", None, "An event is a JSON object.")
    unknown = sorted(set(raw) - EVENT_FIELDS)
    if unknown:
        return Refusal("unknown_field", unknown[0], f"Unknown field {unknown[0]!r}.")
    account_id = raw.get("account", default_account_id)
    if account_id is None:
        return Refusal("required", "account", "Say which account the event is for (its id).")
    if isinstance(account_id, bool) or not isinstance(account_id, int) or account_id <= 0:
        return Refusal("invalid_account", "account", "account is an account id (a positive integer).")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        return Refusal("required", "metric", "Name the metric, e.g. 'tickets'.")
    quantity = raw.get("quantity")
    if quantity is None:
        return Refusal("required", "quantity", "Give a quantity (a positive integer).")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        return Refusal("invalid_quantity", "quantity", "quantity must be a whole number.")
    if quantity <= 0:
        return Refusal("invalid_quantity", "quantity", "quantity must be positive.")
    if quantity > MAX_QUANTITY:
        return Refusal("invalid_quantity", "quantity", f"quantity may be at most {MAX_QUANTITY:,} per event.")
    key = raw.get("idempotency_key")
    if not isinstance(key, str) or not key.strip():
        return Refusal("required", "idempotency_key", "Give every event an idempotency key you choose.")
    if len(key) > MAX_KEY_LENGTH:
        return Refusal(
            "invalid_idempotency_key",
            "idempotency_key",
            f"idempotency_key may be at most {MAX_KEY_LENGTH} characters (it has {len(key)}).",
        )
    if "occurred_at" not in raw:
        return Refusal("required", "occurred_at", "Say when the usage occurred (occurred_at).")
    occurred_at = _parse_time(raw["occurred_at"])
    if isinstance(occurred_at, Refusal):
        return occurred_at
    return _Event(index, account_id, metric, quantity, occurred_at, key)


def _check_shape_fast(raw, index: int, default_account_id: int | None) -> _Event | Refusal:
    """`_check_shape` for the common case, a well-formed event, in one pass with exact type checks.

    Anything it does not take goes to `_check_shape`, which names the refusal: the rules are the same.
    """
    if type(raw) is dict and raw.keys() <= EVENT_FIELDS:
        account_id = raw.get("account", default_account_id)
        metric = raw.get("metric")
        quantity = raw.get("quantity")
        key = raw.get("idempotency_key")
        at = raw.get("occurred_at")
        if (
            type(account_id) is int  # exact types: JSON gives int, and bool (a subclass) is refused
            and account_id > 0
            and type(metric) is str
            and metric
            and type(quantity) is int
            and 0 < quantity <= MAX_QUANTITY
            and type(key) is str
            and len(key) <= MAX_KEY_LENGTH
            and key.strip()
            and type(at) is str
        ):
            try:
                moment = datetime.fromisoformat(at)
            except ValueError:
                moment = None
            if moment is not None and moment.tzinfo is not None:
                return _Event(index, account_id, metric, quantity, moment.astimezone(UTC), key)
    return _check_shape(raw, index, default_account_id)


@dataclass
class IngestResult:
    results: list[dict]
    counts: dict[str, int]


def usage_events_record(*, events: list, caller_account: Account | None, now: datetime | None = None) -> IngestResult:
    """Record a batch of usage events; return one result per index (new, duplicate or refused).

    `caller_account` is the API key's account (events may only be for it), or None for the platform
    token (events name any account). One SQL statement share-locks the periods, inserts the events with
    ON CONFLICT DO NOTHING and adds only the rows it actually inserted to the period rollups, all in one
    transaction, so a retried or concurrent batch is counted once.
    """
    now = now or timezone.now()
    window = finality_window()
    results: list[dict | None] = [None] * len(events)

    def refuse(index: int, refusal: Refusal) -> None:
        results[index] = {"index": index, "status": "refused", "error": refusal.as_dict()}

    default_account_id = caller_account.pk if caller_account else None
    shaped: list[_Event] = []
    for index, raw in enumerate(events):
        event = _check_shape_fast(raw, index, default_account_id)
        if type(event) is Refusal:
            refuse(index, event)
        elif caller_account is not None and event.account_id != caller_account.pk:
            refuse(index, Refusal("account_not_allowed", "account", "This API key reports for its own account only."))
        else:
            shaped.append(event)

    contexts = _contexts({e.account_id for e in shaped}, caller_account)
    accepted: list[_Event] = []
    seen: dict[tuple[int, str], int] = {}
    for event in shaped:
        context = contexts.get(event.account_id, MISSING)
        if context is MISSING:
            refuse(event.index, Refusal("unknown_account", "account", f"No account {event.account_id}."))
            continue
        refusal = _check_against_subscription(event, context, now, window)
        if refusal:
            refuse(event.index, refusal)
            continue
        first = seen.setdefault((event.account_id, event.key), event.index)
        if first != event.index:
            # The same key twice in one batch: the first stands, as if the second were a retry.
            results[event.index] = {"index": event.index, "status": "duplicate", "duplicate_of_index": first}
            continue
        accepted.append(event)

    if accepted:
        outcome = _insert(accepted, contexts, now)
        for event in accepted:
            state, event_id = outcome[event.index]
            if state is None and event.outside is not None:
                refuse(event.index, event.outside)
            elif state != UsagePeriodState.OPEN:
                # Rated (or being rated) since we looked: the period takes no more events.
                refuse(event.index, _closed_refusal(event.period_start, event.period_end, window))
            elif event_id is None:
                results[event.index] = {"index": event.index, "status": "duplicate"}
            else:
                results[event.index] = {"index": event.index, "status": "new", "id": event_id}

        usage_thresholds_check(event_ids=[r["id"] for r in results if r and r["status"] == "new"])

    counts = {"new": 0, "duplicate": 0, "refused": 0}
    for result in results:
        counts[result["status"]] += 1
    return IngestResult(results=results, counts=counts)


def _contexts(account_ids: set[int], caller_account: Account | None) -> dict[int, UsageContext | None]:
    """The usage context of each known account among `account_ids`; unknown accounts are left out.

    One cache read for the batch. A context is cached only once its account was read, so a hit also
    says the account exists (accounts are never deleted: their usage periods and ledger protect them).
    """
    if not account_ids:
        return {}
    keys = {context_cache_key(account_id): account_id for account_id in account_ids}
    contexts = {keys[key]: context for key, context in cache.get_many(list(keys)).items()}
    missing = account_ids - contexts.keys()
    if missing:
        accounts = {caller_account.pk: caller_account} if caller_account else {}
        if missing - accounts.keys():
            accounts.update(Account.objects.in_bulk(missing - accounts.keys()))
        for account_id in missing:
            if account_id in accounts:
                contexts[account_id] = usage_context_cached(account=accounts[account_id])
    return contexts


def _check_against_subscription(
    event: _Event, context: UsageContext | None, now: datetime, window: timedelta
) -> Refusal | None:
    if context is None:
        return Refusal("no_subscription", "account", "This account has no subscription to report usage against.")
    if event.metric not in context.metered:
        allowed = ", ".join(sorted(context.metered)) or "none"
        return Refusal(
            "metric_not_in_plan",
            "metric",
            f"{event.metric[:40]!r} is not metered on the {context.plan_price.plan.name} plan (metered: {allowed}).",
        )
    if event.occurred_at > now + FUTURE_TOLERANCE:
        return Refusal("occurred_in_future", "occurred_at", "occurred_at is in the future.")
    if context.started_at and event.occurred_at < context.started_at:
        event.outside = Refusal("before_subscription", "occurred_at", "occurred_at is before the subscription started.")
        return None
    if context.ended_at and event.occurred_at >= context.ended_at:
        event.outside = Refusal("after_subscription", "occurred_at", "occurred_at is after the subscription ended.")
        return None
    start, end = context.period_for(event.occurred_at)
    if end + window <= now:
        return _closed_refusal(start, end, window)
    event.period_start, event.period_end = start, end
    return None


def _closed_refusal(start: datetime, end: datetime, window: timedelta) -> Refusal:
    hours = int(window.total_seconds() // 3600)
    return Refusal(
        "period_closed",
        "occurred_at",
        f"The usage period {start:%Y-%m-%d} - {end:%Y-%m-%d} closed {hours} hours after its end; "
        "it has been billed and takes no more events.",
    )


# One statement, so one round trip and one transaction (autocommit) per batch:
# - `locked` share-locks the stored periods the events fall in (start <= occurred_at < end; periods of
#   an account never overlap) until commit, in id order (no deadlocks): the beat job's claim (an UPDATE)
#   waits for us, so an event is either in the rollup when its period is rated, or refused because it is
#   rated. A claim that committed first shows here as a state other than open. `spans` narrows the scan
#   to each account's periods between its batch's first and last event (one or two rows an account).
# - `ins` inserts the events of open periods, sorted by the unique key so that concurrent batches sharing
#   keys wait on each other in the same order instead of deadlocking; a key already there is skipped.
# - `rolled` adds only the rows `ins` inserted to the rollups, in (period, metric) order.
# - The answer is one row per event given: its period's state (NULL: no stored period contains it yet)
#   and its new id (NULL: not inserted). The rows travel as one JSON array: psycopg dumps a long string
#   far faster than six Python lists as PostgreSQL arrays.
_INGEST_SQL = """
WITH input AS (
    SELECT * FROM json_to_recordset(%(rows)s::json)
        AS t(i integer, a bigint, k varchar, m varchar, q integer, o timestamptz)
), spans AS (
    SELECT a, min(o) AS lo, max(o) AS hi FROM input GROUP BY a
), locked AS (
    SELECT p.id, p.account_id, p.start, p."end", p.state FROM {period} p JOIN spans ON p.account_id = spans.a
    WHERE p.start <= spans.hi AND p."end" > spans.lo
    ORDER BY p.id FOR SHARE OF p
), ins AS (
    INSERT INTO {event} (account_id, idempotency_key, period_id, metric, quantity, occurred_at, received_at)
    SELECT i.a, i.k, l.id, i.m, i.q, i.o, %(now)s
    FROM input i JOIN locked l ON l.account_id = i.a AND l.start <= i.o AND i.o < l."end"
    WHERE l.state = %(open)s
    ORDER BY i.a, i.k
    ON CONFLICT (account_id, idempotency_key) DO NOTHING
    RETURNING id, account_id, idempotency_key, period_id, metric, quantity
), rolled AS (
    INSERT INTO {rollup} (period_id, metric, used, updated_at)
    SELECT period_id, metric, sum(quantity), %(now)s FROM ins
    GROUP BY period_id, metric ORDER BY period_id, metric
    ON CONFLICT (period_id, metric)
    DO UPDATE SET used = {rollup}.used + excluded.used, updated_at = excluded.updated_at
)
SELECT i.i, l.state, ins.id
FROM input i
LEFT JOIN locked l ON l.account_id = i.a AND l.start <= i.o AND i.o < l."end"
LEFT JOIN ins ON ins.account_id = i.a AND ins.idempotency_key = i.k
"""


def _insert(accepted: list[_Event], contexts, now: datetime) -> dict[int, tuple[str | None, int | None]]:
    """Record the accepted events; return, by index, their period's state and their new id (None: a duplicate).

    Periods are created on an account's first event of the month: then the statement finds no period
    for those events, and they go again, after the periods are created, in one transaction.
    """
    outcome = _insert_statement(accepted, now)
    # Events outside the current subscription never open a period: they are refused if none holds them.
    later = [event for event in accepted if outcome[event.index][0] is None and event.outside is None]
    if later:
        with transaction.atomic():
            _periods_create(later, contexts, now)
            outcome.update(_insert_statement(later, now))
        if any(outcome[event.index][0] is None for event in later):
            raise RuntimeError("A usage period created for a batch could not be read back.")
    return outcome


def _insert_statement(events: list[_Event], now: datetime) -> dict[int, tuple[str | None, int | None]]:
    sql = _INGEST_SQL.format(
        period=UsagePeriod._meta.db_table, event=UsageEvent._meta.db_table, rollup=UsageRollup._meta.db_table
    )
    rows = json.dumps(
        [
            {
                "i": e.index,
                "a": e.account_id,
                "k": e.key,
                "m": e.metric,
                "q": e.quantity,
                "o": e.occurred_at.isoformat(),
            }
            for e in events
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"rows": rows, "now": now, "open": UsagePeriodState.OPEN.value})
        return {index: (state, event_id) for index, state, event_id in cursor.fetchall()}


def _periods_create(events: list[_Event], contexts, now: datetime) -> None:
    usage_periods_create(
        wanted=[(e.account_id, e.occurred_at, e.period_start, e.period_end) for e in events],
        contexts=contexts,
        now=now,
    )
