"""The billing engine (time-driven work) and test clocks.

:func:`run_until` does, in time order, everything that falls due for the subscriptions and
invoices of one test clock (or of the objects on no clock) up to a target time:

- ``trial_will_end`` (``customer.subscription.trial_will_end``, 3 days before a trial ends),
- ``upcoming`` (``invoice.upcoming``, 3 days before a renewal, with the preview of that invoice),
- ``cancel`` (``cancel_at`` / ``cancel_at_period_end`` reached: ``customer.subscription.deleted``),
- ``renew`` (period end: next period, a ``subscription_cycle`` invoice with the new period's licensed
  items, pending invoice items and the ended period's metered usage, created as a draft),
- ``finalize`` (the draft, ``finalize_delay`` = 1 hour later as on Stripe: finalized and charged),
- ``retry`` (a failed renewal's next attempt, per the retry schedule),
- ``expire`` (an ``incomplete`` subscription 23 hours old becomes ``incomplete_expired``).

For a clock, its ``frozen_time`` steps to each action's time first, so objects and events get
that time. Advancing a clock runs synchronously inside the request: the answer is the clock
already ``ready``, after ``test_helpers.test_clock.advancing`` and ``.ready`` events.
"""

from __future__ import annotations

import copy
import time

from sandbox.billing import periods
from sandbox.billing import settings as billing_settings
from sandbox.billing.invoices import collect, drafts
from sandbox.billing.subscriptions.lifecycle import cancel_now
from sandbox.billing.subscriptions.specs import renewal_specs
from sandbox.billing.subscriptions.state import next_period, period, set_period
from sandbox.core import errors, listing, objects
from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store
from sandbox.events.emit import emit, previous_attributes

CLOCK = "test_helpers.test_clock"
MAX_STEPS = 100_000
PRIORITY = {"trial_will_end": 0, "upcoming": 0, "cancel": 1, "expire": 1, "renew": 2, "finalize": 3, "retry": 4}


def _due(store: Store, clock_id: str | None) -> list[tuple[int, int, str, str]]:
    conf = billing_settings.settings(store)
    actions = []
    for sub in store.all("subscription"):
        if sub["test_clock"] != clock_id or sub["status"] in ("canceled", "incomplete_expired"):
            continue
        meta = store.meta_for(sub["id"])
        if sub["status"] == "incomplete":
            actions.append((sub["created"] + conf["incomplete_expires"], "expire", sub["id"]))
            continue
        start, end = period(sub)
        if sub["status"] == "trialing" and sub["trial_end"] and not meta.get("trial_will_end_sent"):
            at = max(sub["trial_end"] - conf["trial_will_end_days"] * periods.DAY, sub["created"])
            if at < sub["trial_end"]:
                actions.append((at, "trial_will_end", sub["id"]))
        if sub["cancel_at"] is not None and sub["cancel_at"] <= end:
            actions.append((sub["cancel_at"], "cancel", sub["id"]))
            continue
        upcoming_at = end - conf["upcoming_days"] * periods.DAY
        if meta.get("upcoming_sent") != end and upcoming_at > start and sub["status"] != "unpaid":
            actions.append((upcoming_at, "upcoming", sub["id"]))
        actions.append((end, "renew", sub["id"]))
    for invoice in store.all("invoice"):
        if invoice["test_clock"] != clock_id or not invoice["auto_advance"]:
            continue
        if invoice["status"] == "draft" and invoice["automatically_finalizes_at"]:
            actions.append((invoice["automatically_finalizes_at"], "finalize", invoice["id"]))
        elif invoice["status"] == "open" and invoice["next_payment_attempt"]:
            actions.append((invoice["next_payment_attempt"], "retry", invoice["id"]))
    return [(at, PRIORITY[kind], kind, obj_id) for at, kind, obj_id in actions]


def run_until(store: Store, clock_id: str | None, target: int) -> int:
    """Do everything due up to ``target`` in time order; returns the number of actions run."""
    clock = store.get(CLOCK, clock_id) if clock_id else None
    steps = 0
    while steps < MAX_STEPS:
        due = [a for a in _due(store, clock_id) if a[0] <= target]
        if not due:
            break
        at, _, kind, obj_id = min(due)
        if clock is not None and at > clock["frozen_time"]:
            clock["frozen_time"] = at
        elif clock is None:
            # Objects on no clock: the sandbox's own time steps back to the action's time while it runs.
            store.time_offset = at - int(time.time())
        ACTIONS[kind](store, obj_id)
        steps += 1
    if clock is not None:
        clock["frozen_time"] = target
    else:
        store.time_offset = target - int(time.time())
    return steps


# actions


def _trial_will_end(store: Store, sub_id: str) -> None:
    sub = store.get("subscription", sub_id)
    store.meta_for(sub_id)["trial_will_end_sent"] = True
    emit(store, "customer.subscription.trial_will_end", sub, clock_id=sub["test_clock"])


def _upcoming(store: Store, sub_id: str) -> None:
    sub = store.get("subscription", sub_id)
    start, end = period(sub)
    store.meta_for(sub_id)["upcoming_sent"] = end
    customer = store.get("customer", sub["customer"])
    new_start, new_end, _ = next_period(store, sub)
    specs = renewal_specs(store, sub, (start, end), (new_start, new_end), was_trial=sub["status"] == "trialing")
    preview = drafts.build_invoice(
        store, customer, specs, billing_reason="upcoming", subscription=sub, period=(start, end), preview=True
    )
    preview["created"] = end
    # As on Stripe, the upcoming invoice has no id (dj-stripe ignores the event instead of fetching it).
    preview["id"] = None
    preview["lines"]["url"] = "/v1/invoices/upcoming/lines"
    emit(store, "invoice.upcoming", preview, clock_id=sub["test_clock"])


def _cancel(store: Store, sub_id: str) -> None:
    sub = store.get("subscription", sub_id)
    cancel_now(store, sub, "cancellation_requested")


def _expire(store: Store, sub_id: str) -> None:
    sub = store.get("subscription", sub_id)
    invoice = store.get("invoice", sub["latest_invoice"]) if sub["latest_invoice"] else None
    if invoice is not None and invoice["status"] == "open":
        collect.void(store, invoice)
    before = copy.deepcopy(sub)
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = store.now(sub["test_clock"])
    emit(store, "customer.subscription.updated", sub, previous_attributes(before, sub), clock_id=sub["test_clock"])


def _renew(store: Store, sub_id: str) -> None:
    sub = store.get("subscription", sub_id)
    clock = sub["test_clock"]
    customer = store.get("customer", sub["customer"])
    before = copy.deepcopy(sub)
    start, end = period(sub)
    new_start, new_end, k = next_period(store, sub)
    was_trial = sub["status"] == "trialing"
    if was_trial:
        pm = sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
        if pm is None and sub["trial_settings"]["end_behavior"]["missing_payment_method"] == "cancel":
            cancel_now(store, sub, "cancellation_requested")
            return
    specs = renewal_specs(store, sub, (start, end), (new_start, new_end), was_trial=was_trial)
    store.meta_for(sub_id)["k"] = k
    set_period(sub, new_start, new_end)
    if was_trial:
        sub["status"] = "active"
    invoice = drafts.create_invoice(
        store,
        customer,
        specs,
        billing_reason="subscription_cycle",
        subscription=sub,
        period=(start, end),
        auto_advance=sub["status"] != "unpaid",
    )
    sub["latest_invoice"] = invoice["id"]
    emit(store, "customer.subscription.updated", sub, previous_attributes(before, sub), clock_id=clock)
    delay = billing_settings.settings(store)["finalize_delay"]
    if sub["status"] == "unpaid":
        return  # Stripe keeps drafting invoices for an unpaid subscription but does not collect them.
    if delay > 0:
        invoice["automatically_finalizes_at"] = store.now(clock) + delay
    else:
        _finalize(store, invoice["id"])


def _finalize(store: Store, invoice_id: str) -> None:
    collect.finalize_and_collect(store, store.get("invoice", invoice_id), off_session=True)


def _retry(store: Store, invoice_id: str) -> None:
    collect.attempt(store, store.get("invoice", invoice_id), off_session=True)


ACTIONS = {
    "trial_will_end": _trial_will_end,
    "upcoming": _upcoming,
    "cancel": _cancel,
    "expire": _expire,
    "renew": _renew,
    "finalize": _finalize,
    "retry": _retry,
}


# test clocks


def get_clock(store: Store, clock_id: str) -> dict:
    return store.fetch(CLOCK, clock_id, "id")


@route("POST", "/v1/test_helpers/test_clocks")
def create_clock(req: ApiRequest) -> dict:
    params = req.validate({"frozen_time": int, "name": str})
    P.require(params, "frozen_time")
    store = req.store
    now = store.now()
    clock = objects.build(
        CLOCK,
        id=store.new_id("clock"),
        created=now,
        deletes_after=now + 30 * periods.DAY,
        frozen_time=params["frozen_time"],
        livemode=False,
        name=params.get("name"),
        status="ready",
        status_details={},
    )
    store.insert(clock)
    emit(store, "test_helpers.test_clock.created", clock, clock_id=clock["id"])
    return clock


@route("GET", "/v1/test_helpers/test_clocks/<clock_id>")
def retrieve_clock(req: ApiRequest, clock_id: str) -> dict:
    req.validate({})
    return get_clock(req.store, clock_id)


@route("GET", "/v1/test_helpers/test_clocks")
def list_clocks(req: ApiRequest) -> dict:
    params = req.validate(listing.LIST_PARAMS)
    return listing.paginate(params, req.store.all(CLOCK), "/v1/test_helpers/test_clocks")


@route("DELETE", "/v1/test_helpers/test_clocks/<clock_id>")
def delete_clock(req: ApiRequest, clock_id: str) -> dict:
    req.validate({})
    store = req.store
    clock = get_clock(store, clock_id)
    # Like Stripe, deleting a clock deletes the customers (and their billing objects) living on it.
    for table in ("subscription", "invoice", "invoiceitem", "customer"):
        for obj in list(store.all(table)):
            if obj.get("test_clock") == clock_id:
                store.delete(table, obj["id"])
    emit(store, "test_helpers.test_clock.deleted", clock, clock_id=clock_id)
    store.delete(CLOCK, clock_id)
    return objects.deleted(CLOCK, clock_id)


@route("POST", "/v1/test_helpers/test_clocks/<clock_id>/advance")
def advance_clock(req: ApiRequest, clock_id: str) -> dict:
    params = req.validate({"frozen_time": int})
    P.require(params, "frozen_time")
    store = req.store
    clock = get_clock(store, clock_id)
    target = params["frozen_time"]
    if target <= clock["frozen_time"]:
        raise errors.invalid_request(
            "The frozen time must be later than the test clock's current frozen time.", "frozen_time"
        )
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": target}}
    emit(store, "test_helpers.test_clock.advancing", clock, clock_id=clock_id)
    run_until(store, clock_id, target)
    clock["status"] = "ready"
    clock["status_details"] = {}
    emit(store, "test_helpers.test_clock.ready", clock, clock_id=clock_id)
    return clock


# sandbox helpers


@route("POST", "/_sandbox/advance", auth=False)
def advance_world(req: ApiRequest) -> dict:
    """Move the sandbox's own time (objects on no test clock) forward and run what falls due."""
    params = req.validate({"seconds": int, "to": int})
    store = req.store
    if params.get("to") is not None:
        store.time_offset += max(0, params["to"] - store.now())
    elif params.get("seconds"):
        store.time_offset += max(0, params["seconds"])
    steps = run_until(store, None, store.now())
    return {"object": "sandbox.advance", "now": store.now(), "time_offset": store.time_offset, "actions": steps}


SETTINGS_SCHEMA = {
    "retry_days": P.ANY,
    "after_final_failure": P.OneOf("canceled", "unpaid", "past_due"),
    "finalize_delay": int,
    "upcoming_days": int,
    "trial_will_end_days": int,
    "incomplete_expires": int,
}


@route("GET", "/_sandbox/billing/settings", auth=False)
def get_settings(req: ApiRequest) -> dict:
    return {"object": "sandbox.billing_settings", **billing_settings.settings(req.store)}


@route("POST", "/_sandbox/billing/settings", auth=False)
def set_settings(req: ApiRequest) -> dict:
    """Change the billing engine's knobs: ``retry_days`` (``3,5,7`` or ``retry_days[]=3…``; empty: no
    retries), ``after_final_failure``, ``finalize_delay`` (seconds), ``upcoming_days``,
    ``trial_will_end_days``, ``incomplete_expires`` (seconds)."""
    params = req.validate(SETTINGS_SCHEMA)
    current = billing_settings.settings(req.store)
    if "retry_days" in params:
        raw = params["retry_days"]
        items = raw if isinstance(raw, list) else [x for x in (raw or "").split(",") if x.strip()]
        try:
            current["retry_days"] = [float(x) for x in items]
        except ValueError:
            raise errors.invalid_request("retry_days must be numbers of days, e.g. 3,5,7", "retry_days") from None
    for key in SETTINGS_SCHEMA:
        if key != "retry_days" and params.get(key) is not None:
            current[key] = params[key]
    return {"object": "sandbox.billing_settings", **current}
