"""A population of merchants, honest and not, run through the real fraud services, and what the rules caught.

Used by the tests (a smaller population, the targets asserted) and by `bench/fraud_scenarios.py` (the table).
A scenario is one merchant's (or one fraud operation's) signups, card attempts and disputes. Signups go
through `assess_signup` exactly as the signup form calls it, and the deeper check runs as its Celery task
would; accounts are created the way provisioning creates them (on hold when the signup was sent to review),
without welcome emails or Stripe customers; card attempts go through `checkout_assess` and
`payment_record_attempt`, disputes through `chargeback_record`: the same services the webhooks call.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.errors import DomainError
from accounts.models import Account, User
from fraud.models import Decision, RiskAssessment
from fraud.services import chargeback_record, checkout_assess, payment_record_attempt
from fraud.services.payment import ChargeFacts
from fraud.services.signup import assess_signup, signup_link_account, signup_recheck

WEBMAIL = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me")
DISPOSABLE = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "trashmail.com")
COUNTRIES = ("FR", "DE", "US", "GB", "ES", "IT", "NL", "BE", "CA", "SE")
FAR_COUNTRIES = ("NG", "VN", "ID", "BR", "RU", "PK")
SEVERITY = {Decision.ALLOW: 0, Decision.REVIEW: 1, Decision.BLOCK: 2}

FRAUD_KINDS = ("trial_farm_ip", "trial_farm_device", "stealth_farm", "card_testing", "disposable", "bot",
               "country_mismatch", "dispute")  # fmt: skip


@dataclass
class Signup:
    email: str
    ip: str
    device_id: str
    country: str
    form_seconds: float
    honeypot: str = ""


@dataclass
class Attempt:
    succeeded: bool
    fingerprint: str
    card_country: str
    funding: str = "credit"
    risk_level: str = "normal"


@dataclass
class Scenario:
    kind: str
    signups: list[Signup]
    attempts: list[Attempt] = field(default_factory=list)  # made by the scenario's last account
    ip_country: str = ""
    disputed: bool = False
    # Filled in by the run.
    outcome: str = Decision.ALLOW
    signup_outcomes: list[str] = field(default_factory=list)

    @property
    def fraud(self) -> bool:
        return self.kind != "honest"


@dataclass
class Report:
    rows: list[dict]
    fraud_caught: float
    honest_blocked: float
    honest_reviewed: float
    farm_signups_caught: float
    signup_p95_ms: float
    signup_p50_ms: float
    signups: int


class _Names:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n

    def ip(self) -> str:
        rng = self.rng
        first = rng.choice([n for n in range(11, 224) if n not in (100, 127, 169, 172, 192, 198, 203)])
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def device(self) -> str:
        return f"dev{self.next():06d}{self.rng.randint(0, 10**6):06d}"

    def fingerprint(self) -> str:
        return f"fp{self.next():08d}{self.rng.randint(0, 10**6):06d}"

    def company_email(self) -> str:
        n = self.next()
        local = self.rng.choice(["ops", "hello", "anna", "jo", "team", "contact"])
        return f"{local}@shop{n}-{self.rng.randint(0, 999)}.example"

    def webmail(self) -> str:
        return f"{self.rng.choice(['marie', 'tom', 'li', 'sam', 'alex'])}.{self.next()}@{self.rng.choice(WEBMAIL)}"


def _human_seconds(rng: random.Random) -> float:
    # Most people take 15 s to a few minutes; 1 % autofill the form in about two seconds.
    return rng.uniform(1.2, 2.8) if rng.random() < 0.01 else rng.lognormvariate(3.3, 0.6) + 4


def _honest(rng: random.Random, names: _Names) -> Scenario:
    country = rng.choice(COUNTRIES)
    email = names.company_email() if rng.random() < 0.7 else names.webmail()
    device = names.device()
    signups = [Signup(email, names.ip(), device, country, _human_seconds(rng))]
    if rng.random() < 0.01:  # a merchant opening a second shop from the same browser the same day
        signups.append(Signup(names.company_email(), signups[0].ip, device, country, _human_seconds(rng)))
    attempts = []
    if rng.random() < 0.85:
        card_country = country if rng.random() < 0.95 else rng.choice(COUNTRIES)
        funding = "prepaid" if rng.random() < 0.02 else rng.choice(["credit", "debit"])
        risk = "elevated" if rng.random() < 0.01 else "normal"
        fingerprint = names.fingerprint()
        if rng.random() < 0.1:  # insufficient funds once, then another card
            attempts.append(Attempt(False, names.fingerprint(), card_country))
        attempts.append(Attempt(True, fingerprint, card_country, funding, risk))
    return Scenario("honest", signups, attempts, ip_country=country)


def _fraud(kind: str, rng: random.Random, names: _Names) -> Scenario:
    country = rng.choice(COUNTRIES)
    if kind == "trial_farm_ip":  # one IP, cookies cleared between signups, webmail
        ip = names.ip()
        size = rng.randint(4, 12)
        signups = [Signup(names.webmail(), ip, names.device(), country, rng.uniform(5, 20)) for _ in range(size)]
        return Scenario(kind, signups, [Attempt(True, names.fingerprint(), country)], ip_country=country)
    if kind == "trial_farm_device":  # rotating proxies, one browser
        device = names.device()
        size = rng.randint(3, 10)
        signups = [Signup(names.webmail(), names.ip(), device, country, rng.uniform(5, 20)) for _ in range(size)]
        return Scenario(kind, signups, [Attempt(True, names.fingerprint(), country)], ip_country=country)
    if kind == "stealth_farm":  # rotating IPs and browsers, slow forms: only the card they all use gives them away
        card = names.fingerprint()
        scenario = Scenario(kind, [], ip_country=country)
        scenario.signups = [Signup(names.webmail(), names.ip(), names.device(), country, rng.uniform(10, 40))
                            for _ in range(rng.randint(2, 5))]  # fmt: skip
        scenario.attempts = [Attempt(True, card, country)]  # made by every account of the farm
        return scenario
    if kind == "card_testing":
        attempts = [Attempt(False, names.fingerprint(), rng.choice(FAR_COUNTRIES)) for _ in range(rng.randint(4, 15))]
        signup = Signup(names.webmail(), names.ip(), names.device(), country, rng.uniform(6, 30))
        return Scenario(kind, [signup], attempts, ip_country=country)
    if kind == "disposable":
        email = f"{rng.choice(['x', 'deal', 'free'])}{names.next()}@{rng.choice(DISPOSABLE)}"
        return Scenario(kind, [Signup(email, names.ip(), names.device(), country, rng.uniform(3, 30))])
    if kind == "bot":
        signup = Signup(
            names.company_email(), names.ip(), names.device(), country, rng.uniform(0.1, 1.5), "spam.example"
        )
        return Scenario(kind, [signup])
    if kind == "country_mismatch":  # a stolen card from far away, used from a third country
        card_country, ip_country = rng.sample(FAR_COUNTRIES, 2)
        roll = rng.random()
        funding, risk = ("prepaid", "normal") if roll < 0.3 else ("credit", "elevated" if roll < 0.85 else "highest")
        if rng.random() < 0.05:
            funding, risk = "credit", "normal"  # nothing but the mismatch: this one should slip through
        attempt = Attempt(True, names.fingerprint(), card_country, funding, risk)
        signup = Signup(names.webmail(), names.ip(), names.device(), country, rng.uniform(6, 30))
        return Scenario(kind, [signup], [attempt], ip_country=ip_country)
    if kind == "dispute":  # looks honest until the chargeback
        signup = Signup(names.company_email(), names.ip(), names.device(), country, rng.uniform(8, 60))
        return Scenario(
            kind, [signup], [Attempt(True, names.fingerprint(), country)], ip_country=country, disputed=True
        )
    raise ValueError(kind)


def population_generate(*, honest: int = 900, fraud_per_kind: int = 13, seed: int = 7) -> list[Scenario]:
    """Mostly honest merchants and `fraud_per_kind` operations of each fraud kind, shuffled together."""
    rng = random.Random(seed)
    names = _Names(rng)
    scenarios = [_honest(rng, names) for _ in range(honest)]
    scenarios += [_fraud(kind, rng, names) for kind in FRAUD_KINDS for _ in range(fraud_per_kind)]
    rng.shuffle(scenarios)
    return scenarios


def _provision(signup: Signup, hold: bool) -> Account:
    """What signup + verification + onboarding leave behind, minus emails and Stripe."""
    user = User.objects.create(email=signup.email, signup_ip=signup.ip, signup_risk_hold=hold)
    slug = slugify(signup.email.replace("@", "-"))[:70] + f"-{user.pk}"
    account = Account.objects.create(
        name=signup.email.split("@")[1], slug=slug, country=signup.country, signup_ip=signup.ip,
        billing_email=signup.email, provisioned_by=user, risk_hold=hold,
        trial_ends_at=timezone.now() + timedelta(days=14),
    )  # fmt: skip
    signup_link_account(account=account)
    return account


def _attempt(account: Account, scenario: Scenario, attempt: Attempt, ip: str, n: int) -> bool:
    """One card attempt through checkout; False when checkout refused it (hold or cool-off)."""
    account.refresh_from_db()
    try:
        checkout_assess(account=account, ip=ip, ip_country=scenario.ip_country)
    except DomainError:
        return False
    facts = ChargeFacts(
        reference=f"ch_sim_{account.pk}_{n}",
        succeeded=attempt.succeeded,
        fingerprint=attempt.fingerprint,
        card_country=attempt.card_country,
        funding=attempt.funding,
        risk_level=attempt.risk_level,
    )
    payment_record_attempt(account=account, facts=facts)
    return True


def scenario_run(scenario: Scenario, timings: list[float]) -> None:
    accounts: list[Account] = []
    for signup in scenario.signups:
        started = time.perf_counter()
        verdict = assess_signup(
            email=signup.email, ip=signup.ip, device_id=signup.device_id, honeypot=signup.honeypot,
            form_seconds=signup.form_seconds,
        )  # fmt: skip
        timings.append(time.perf_counter() - started)
        scenario.signup_outcomes.append(verdict.decision)
        if verdict.blocked:
            continue
        account = _provision(signup, verdict.hold)
        if verdict.assessment_id:
            RiskAssessment.objects.filter(pk=verdict.assessment_id).update(user=account.provisioned_by)
            signup_recheck(assessment_id=verdict.assessment_id)  # the Celery task, run in line
        accounts.append(account)
    payers = accounts if scenario.kind == "stealth_farm" else accounts[-1:]
    for account in payers:
        ip = scenario.signups[0].ip
        for n, attempt in enumerate(scenario.attempts):
            if not _attempt(account, scenario, attempt, ip, n):
                break
        if scenario.disputed:
            chargeback_record(
                account=account,
                dispute={"id": f"dp_sim_{account.pk}", "charge": f"ch_sim_{account.pk}_0", "reason": "fraudulent",
                         "amount": 9900, "currency": "usd"},
                charge={},
            )  # fmt: skip
    emails = [signup.email for signup in scenario.signups]
    decisions = set(
        RiskAssessment.objects.filter(Q(email__in=emails) | Q(account__in=accounts)).values_list("decision", flat=True)
    ) | set(scenario.signup_outcomes)
    scenario.outcome = max(decisions, key=lambda d: SEVERITY[d]) if decisions else Decision.ALLOW
    # Per signup, for farms: each signup's own final state (sent to review later by the deeper check counts).
    final = []
    for signup, first in zip(scenario.signups, scenario.signup_outcomes, strict=True):
        later = RiskAssessment.objects.filter(email=signup.email).exclude(decision=Decision.ALLOW).exists()
        final.append(Decision.REVIEW if (first == Decision.ALLOW and later) else first)
    scenario.signup_outcomes = final


def population_run(scenarios: list[Scenario]) -> Report:
    """Run every scenario and report per kind and overall. Clears the cache first (counters start at zero)."""
    cache.clear()
    timings: list[float] = []
    for scenario in scenarios:
        scenario_run(scenario, timings)
    rows = []
    for kind in ("honest", *FRAUD_KINDS):
        group = [s for s in scenarios if s.kind == kind]
        if not group:
            continue
        counts = {d: sum(1 for s in group if s.outcome == d) for d in SEVERITY}
        rows.append(
            {
                "kind": kind,
                "scenarios": len(group),
                "signups": sum(len(s.signups) for s in group),
                "allowed": counts[Decision.ALLOW],
                "review": counts[Decision.REVIEW],
                "blocked": counts[Decision.BLOCK],
                "caught": (counts[Decision.REVIEW] + counts[Decision.BLOCK]) / len(group),
            }
        )
    honest = [s for s in scenarios if not s.fraud]
    fraud = [s for s in scenarios if s.fraud]
    farm_signups = [o for s in fraud if s.kind.startswith("trial_farm") for o in s.signup_outcomes]
    ordered = sorted(timings)
    return Report(
        rows=rows,
        fraud_caught=sum(s.outcome != Decision.ALLOW for s in fraud) / max(1, len(fraud)),
        honest_blocked=sum(s.outcome == Decision.BLOCK for s in honest) / max(1, len(honest)),
        honest_reviewed=sum(s.outcome == Decision.REVIEW for s in honest) / max(1, len(honest)),
        farm_signups_caught=sum(o != Decision.ALLOW for o in farm_signups) / max(1, len(farm_signups)),
        signup_p95_ms=statistics.quantiles(ordered, n=20)[-1] * 1000 if len(ordered) > 1 else 0.0,
        signup_p50_ms=statistics.median(ordered) * 1000 if ordered else 0.0,
        signups=len(ordered),
    )
