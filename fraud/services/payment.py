"""Payment: checkout admission (hold, card-testing cool-off) and the checks on each charge Stripe reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.errors import NotAllowed
from accounts.models import Account, AccountStatus
from accounts.services import require_not_on_hold
from fraud.blocklist import blocklist_matches
from fraud.counters import CounterUnavailable, counter_hit
from fraud.models import Decision, PaymentFingerprint, RiskAssessment, Stage
from fraud.services.scoring import CACHE_DOWN, Hit, assessment_record, decision_apply, degraded_hit, rules_active

logger = logging.getLogger("fraud")

COOLING_OFF_MESSAGE = "Several payment attempts were declined. Please wait a while before trying again."
CHECKOUT_MEMORY = timedelta(days=1)
CHECKOUT_NOTE = "checkout started"


@dataclass(frozen=True)
class ChargeFacts:
    """What fraud needs from one card attempt, whatever Stripe object reported it."""

    reference: str  # charge or setup intent id
    succeeded: bool
    fingerprint: str = ""
    card_country: str = ""
    funding: str = ""
    risk_level: str = ""
    checkout_ip: str | None = None


def checkout_assess(*, account: Account, ip: str | None, ip_country: str = "") -> None:
    """Admit a checkout start or refuse it (NotAllowed): fraud hold, or a card-testing cool-off on the account
    or its IP. Remembers the IP and its country for the checks on the charges that follow."""
    require_not_on_hold(account=account, action="choosing a plan")
    now = timezone.now()
    cooling = Q(account=account)
    if ip:
        cooling |= Q(ip=ip)
    if RiskAssessment.objects.filter(cooling, cooloff_until__gt=now).exists():
        raise NotAllowed(COOLING_OFF_MESSAGE, code="checkout_cooling_off")
    # The IP of the checkout is what the later charge events lack; a row (not the cache) keeps it.
    RiskAssessment.objects.create(
        account=account,
        email=account.billing_email.lower(),
        stage=Stage.PAYMENT,
        decision=Decision.ALLOW,
        ip=ip or None,
        ip_country=(ip_country or "").upper()[:2],
        note=CHECKOUT_NOTE,
        resolved_at=now,
    )


def _last_checkout(account: Account) -> RiskAssessment | None:
    return (
        RiskAssessment.objects.filter(
            account=account,
            stage=Stage.PAYMENT,
            note=CHECKOUT_NOTE,
            created_at__gte=timezone.now() - CHECKOUT_MEMORY,
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def _checkout_country(checkout: RiskAssessment | None) -> str:
    return checkout.ip_country if checkout else ""


def _card_testing(rules: dict, account: Account, facts: ChargeFacts, ip: str | None) -> Hit | None:
    rule = rules.get("card_testing")
    if rule is None:
        return None
    window = rule["window_minutes"] * 60
    counts = {"account": counter_hit(namespace="decl-acct", value=str(account.pk), window_seconds=window)}
    if ip:
        counts["ip"] = counter_hit(namespace="decl-ip", value=ip, window_seconds=window)
    if facts.fingerprint:
        counts["card"] = counter_hit(namespace="decl-card", value=facts.fingerprint, window_seconds=window)
    over = {name: count for name, count in counts.items() if count >= rule["threshold"]}
    if not over:
        return None
    return Hit("card_testing", rule["score"], {"declines": counts, "threshold": rule["threshold"]})


def payment_record_attempt(*, account: Account, facts: ChargeFacts) -> RiskAssessment | None:
    """Score one card attempt on the account; record and apply a decision when anything fired."""
    rules = rules_active(stage=Stage.PAYMENT)
    checkout = _last_checkout(account)
    ip = facts.checkout_ip or (checkout.ip if checkout else None)
    hits: list[Hit] = []
    cooloff_until = None
    if not facts.succeeded:
        try:
            hit = _card_testing(rules, account, facts, ip)
        except CounterUnavailable as error:
            hit = degraded_hit(CACHE_DOWN, str(error))
        if hit is not None:
            hits.append(hit)
            if hit.code == "card_testing":
                cooloff_until = timezone.now() + timedelta(minutes=rules["card_testing"]["cooloff_minutes"])
    else:
        if facts.fingerprint:
            PaymentFingerprint.objects.get_or_create(account=account, fingerprint=facts.fingerprint)
            if "fingerprint_reuse" in rules:
                others = (
                    PaymentFingerprint.objects.filter(fingerprint=facts.fingerprint).exclude(account=account).count()
                )
                if others >= rules["fingerprint_reuse"]["threshold"]:
                    hits.append(
                        Hit("fingerprint_reuse", rules["fingerprint_reuse"]["score"], {"other_accounts": others})
                    )
        ip_country = _checkout_country(checkout)
        card_country = (facts.card_country or "").upper()
        account_country = str(account.country or "").upper()
        if "country_mismatch" in rules and card_country:
            mismatched = {
                name: value
                for name, value in (("account", account_country), ("ip", ip_country))
                if value and value != card_country
            }
            if mismatched:
                hits.append(
                    Hit("country_mismatch", rules["country_mismatch"]["score"], {"card": card_country, **mismatched})
                )
        on_trial = account.status == AccountStatus.TRIALING or (
            account.trial_ends_at is not None and account.trial_ends_at > timezone.now()
        )
        if "prepaid_on_trial" in rules and facts.funding == "prepaid" and on_trial:
            hits.append(Hit("prepaid_on_trial", rules["prepaid_on_trial"]["score"]))
        for level in ("elevated", "highest"):
            if f"radar_{level}" in rules and facts.risk_level == level:
                hits.append(Hit(f"radar_{level}", rules[f"radar_{level}"]["score"], {"reference": facts.reference}))
        if "payment_blocklisted" in rules:
            matched = blocklist_matches(
                fingerprint=facts.fingerprint, countries_=(card_country, account_country, ip_country)
            )
            if matched:
                hits.append(Hit("payment_blocklisted", rules["payment_blocklisted"]["score"], {"lists": matched}))
    if not hits:
        return None
    assessment = assessment_record(
        stage=Stage.PAYMENT,
        hits=hits,
        account=account,
        ip=ip,
        cooloff_until=cooloff_until,
        note=f"card attempt {facts.reference}",
    )
    if cooloff_until is not None and assessment.decision == Decision.ALLOW:
        # A cool-off always comes with a review, whatever the rule's score was tuned to.
        RiskAssessment.objects.filter(pk=assessment.pk).update(decision=Decision.REVIEW, resolved_at=None)
        assessment.refresh_from_db()
    decision_apply(assessment=assessment)
    return assessment


def payment_hard_decline(*, account: Account, decline_code: str, note: str) -> RiskAssessment:
    """A stolen/lost/fraudulent card (a hard decline) is a payment-stage signal that sends the account to review."""
    return assessment_record(
        stage=Stage.PAYMENT,
        hits=[Hit("hard_decline", settings.FRAUD_REVIEW_SCORE, {"decline_code": decline_code})],
        account=account,
        note=note,
    )
