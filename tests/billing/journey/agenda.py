"""When things happen: each merchant's steps at random moments inside its periods, beat at every boundary.

Real merchants act at random moments, never at the very second a period begins: a step at a renewal's instant
reads the old period's end = now (a downgrade "scheduled" for now, then applied late with prorations; a trial
ended at the second it began), an artifact of the simulation, not a journey. So each step gets its own seeded
moment at least `QUIET` away from every boundary of the merchant's subscription (its monthly boundaries on the
billing cycle anchor, its trial's end, its signup) and from its other steps; beat's moments stay where beat
runs: half an hour before each boundary, two hours after it, and after its finality window.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta

from tests.billing import oracle

QUIET = timedelta(hours=3)  # no step closer than this to a boundary of its merchant's subscription
LATE = timedelta(hours=1)  # a late event occurred this long before the boundary it arrives after


def boundaries(world, merchant, around: datetime) -> list[datetime]:
    """The merchant's moments a step must keep away from: monthly boundaries on the anchor, trial end, signup."""
    moments = [merchant.signed_up_at]
    anchors = [merchant.signed_up_at]
    if merchant.subscription_id is not None:
        sub = world.stripe.v1.subscriptions.retrieve(merchant.subscription_id)
        anchors = [datetime.fromtimestamp(sub.billing_cycle_anchor, tz=UTC)]
        moments += [datetime.fromtimestamp(v, tz=UTC) for v in (sub.trial_end, sub.created) if v]
    for anchor in anchors:
        k = oracle._months_before(anchor, around - timedelta(days=62))
        while (boundary := oracle.add_months(anchor, k, anchor.day)) < around + timedelta(days=62):
            moments.append(boundary)
            k += 1
    return moments


def quiet_moments(rng, lo: datetime, hi: datetime, avoid: list[datetime], count: int) -> list[datetime]:
    """Up to `count` seeded moments in [lo, hi), each at least QUIET from `avoid` and from each other."""
    chosen: list[datetime] = []
    span = int((hi - lo).total_seconds())
    for _ in range(count * 20):
        if len(chosen) == count or span <= 0:
            break
        moment = lo + timedelta(seconds=rng.randrange(span))
        if all(abs(moment - other) >= QUIET for other in avoid + chosen):
            chosen.append(moment)
    return sorted(chosen)


def beat_moments(world, merchant, now: datetime, until: datetime, finality: timedelta) -> list[tuple]:
    """(moment, merchant or None, boundary) for each of beat's moments of the merchant's boundaries before `until`.

    Half an hour before each boundary (scheduled downgrades go on), two hours after it (the renewal is charged,
    late events arrive: the merchant is named), and after its finality window (the period is rated and pushed).
    Boundaries just past are included, so a period that just closed is still rated.
    """
    if merchant.subscription_id is None:
        return []
    sub = world.stripe.v1.subscriptions.retrieve(merchant.subscription_id)
    if sub.status in ("canceled", "incomplete_expired"):
        return []
    anchor = datetime.fromtimestamp(sub.billing_cycle_anchor, tz=UTC)
    k = oracle._months_before(anchor, now - finality - timedelta(hours=2))
    found = []
    while (boundary := oracle.add_months(anchor, k, anchor.day)) < until:
        k += 1
        for moment, who in (
            (boundary - timedelta(minutes=30), None),
            (boundary + timedelta(hours=2), merchant),
            (boundary + finality + timedelta(hours=1), None),
        ):
            if now < moment < until:
                found.append((moment, who, boundary))
    return found


class Agenda:
    """A clock-ordered list of what happens: ("beat", merchant|None, boundary), ("step", merchant, first), ..."""

    def __init__(self) -> None:
        self._heap: list = []
        self._order = 0

    def add(self, moment: datetime, *action) -> None:
        self._order += 1
        heapq.heappush(self._heap, (moment, self._order, action))

    def add_beats(self, world, merchant, until: datetime, finality: timedelta) -> None:
        for moment, who, boundary in beat_moments(world, merchant, world.now(), until, finality):
            self.add(moment, "beat", who, boundary, merchant.n)

    def replan_beats(self, world, merchant, until: datetime, finality: timedelta) -> None:
        """The merchant's subscription changed (anchor, cancel, switch): its future beats follow the new one."""
        self._heap = [item for item in self._heap if not (item[2][0] == "beat" and item[2][3] == merchant.n)]
        heapq.heapify(self._heap)
        self.add_beats(world, merchant, until, finality)

    def pop_moment(self) -> tuple[datetime, list] | None:
        """The next moment and everything due at it (beats at one moment run the jobs once)."""
        if not self._heap:
            return None
        moment, _, action = heapq.heappop(self._heap)
        actions = [action]
        while self._heap and self._heap[0][0] == moment:
            actions.append(heapq.heappop(self._heap)[2])
        return moment, actions
