"""Rule kinds: the stage each belongs to, the parameters it takes (type and range) and the defaults seeded.

A rule's parameters are JSON edited by ops; `rule_parameters_validate` refuses a wrong type or an out-of-range
value naming the parameter, so the admin can put the error on the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from fraud.models import Stage


@dataclass(frozen=True)
class Param:
    kind: type  # int or str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleKind:
    stage: str
    description: str
    params: dict[str, Param]
    default_params: dict
    default_score: int


COUNT = Param(int, 1, 100_000)
MINUTES = Param(int, 1, 60 * 24 * 30)

RULE_KINDS: dict[str, RuleKind] = {
    # --- signup
    "honeypot": RuleKind(Stage.SIGNUP, "The hidden honeypot field was filled in (a bot).", {}, {}, 100),
    "form_too_fast": RuleKind(
        Stage.SIGNUP,
        "The signup form was sent sooner than min_seconds after it was served (or without loading it).",
        {"min_seconds": Param(int, 1, 120)},
        {"min_seconds": 3},
        50,
    ),
    "disposable_email": RuleKind(
        Stage.SIGNUP, "The address is at a disposable-mail domain (PyPI disposable-email-domains).", {}, {}, 60
    ),
    "blocklisted": RuleKind(Stage.SIGNUP, "The email, its domain or the IP is on the blocklist.", {}, {}, 100),
    "blocked_device": RuleKind(
        Stage.SIGNUP,
        "The browser (device cookie) made a signup refused or blocked within window_minutes.",
        {"window_minutes": MINUTES},
        {"window_minutes": 60 * 24 * 30},
        100,
    ),
    "velocity_ip": RuleKind(
        Stage.SIGNUP,
        "This IP made at least `threshold` signups within window_minutes (this one included).",
        {"threshold": COUNT, "window_minutes": MINUTES},
        {"threshold": 3, "window_minutes": 60},
        50,
    ),
    "velocity_subnet": RuleKind(
        Stage.SIGNUP,
        "This IP's /24 (IPv6: /48) made at least `threshold` signups within window_minutes.",
        {"threshold": COUNT, "window_minutes": MINUTES},
        {"threshold": 6, "window_minutes": 60},
        30,
    ),
    "velocity_device": RuleKind(
        Stage.SIGNUP,
        "This browser (device cookie) made at least `threshold` signups within window_minutes.",
        {"threshold": COUNT, "window_minutes": MINUTES},
        {"threshold": 2, "window_minutes": 60 * 24},
        60,
    ),
    "email_domain_burst": RuleKind(
        Stage.SIGNUP,
        "At least `threshold` new signups within window_minutes share this (non-webmail) email domain.",
        {"threshold": COUNT, "window_minutes": MINUTES},
        {"threshold": 4, "window_minutes": 60 * 24},
        50,
    ),
    # --- payment
    "card_testing": RuleKind(
        Stage.PAYMENT,
        "At least `threshold` declines for the account, its checkout IP or one card within window_minutes: "
        "checkout is refused for cooloff_minutes and the account goes to review.",
        {"threshold": COUNT, "window_minutes": MINUTES, "cooloff_minutes": MINUTES},
        {"threshold": 3, "window_minutes": 10, "cooloff_minutes": 60},
        60,
    ),
    "fingerprint_reuse": RuleKind(
        Stage.PAYMENT,
        "The card was already used by at least `threshold` other accounts (trial farming).",
        {"threshold": COUNT},
        {"threshold": 1},
        60,
    ),
    "country_mismatch": RuleKind(
        Stage.PAYMENT, "The card's country differs from the account's country or the checkout IP's country.", {}, {}, 30
    ),
    "prepaid_on_trial": RuleKind(Stage.PAYMENT, "A prepaid card registered on a trial.", {}, {}, 30),
    "radar_elevated": RuleKind(Stage.PAYMENT, "Stripe Radar rated the charge's risk `elevated`.", {}, {}, 40),
    "radar_highest": RuleKind(Stage.PAYMENT, "Stripe Radar rated the charge's risk `highest`.", {}, {}, 100),
    "payment_blocklisted": RuleKind(
        Stage.PAYMENT, "The card's fingerprint, or the card, account or IP country, is on the blocklist.", {}, {}, 100
    ),
    "early_fraud_warning": RuleKind(
        Stage.PAYMENT, "The card network reported the charge as fraud: refund it and suspend the account.", {}, {}, 100
    ),
    # --- feature access
    "usage_burst": RuleKind(
        Stage.FEATURE,
        "Usage in the last 24 hours is at least `multiple` times the plan's daily share of its included units.",
        {"multiple": Param(int, 2, 1000)},
        {"multiple": 10},
        50,
    ),
    # --- chargebacks
    "dispute": RuleKind(
        Stage.CHARGEBACK, "A charge was disputed: the account is suspended until ops decide.", {}, {}, 100
    ),
}


class ParameterError(ValueError):
    def __init__(self, message: str, *, field: str = "parameters"):
        super().__init__(message)
        self.message = message
        self.field = field


def rule_parameters_validate(*, kind: str, parameters) -> dict:
    """Return the parameters with defaults filled in, or raise ParameterError naming what is wrong."""
    spec = RULE_KINDS.get(kind)
    if spec is None:
        raise ParameterError(f"Unknown rule kind {kind!r}.", field="kind")
    if parameters in (None, ""):
        parameters = {}
    if not isinstance(parameters, dict):
        raise ParameterError('Parameters must be a JSON object, e.g. {"threshold": 3}.')
    unknown = sorted(set(parameters) - set(spec.params))
    if unknown:
        allowed = ", ".join(sorted(spec.params)) or "none"
        raise ParameterError(f"Unknown parameter {unknown[0]!r} for {kind} (it takes: {allowed}).")
    cleaned = dict(spec.default_params)
    for name, param in spec.params.items():
        if name not in parameters:
            continue
        value = parameters[name]
        if param.kind is int:
            # JSON true/false are ints in Python; a rule threshold of `true` is a typo, not 1.
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParameterError(f"Parameter {name!r} must be a whole number (got {value!r}).")
            if (param.minimum is not None and value < param.minimum) or (
                param.maximum is not None and value > param.maximum
            ):
                raise ParameterError(
                    f"Parameter {name!r} must be between {param.minimum} and {param.maximum} (got {value})."
                )
        elif not isinstance(value, str) or (param.choices and value not in param.choices):
            raise ParameterError(f"Parameter {name!r} must be one of {', '.join(param.choices)}.")
        cleaned[name] = value
    return cleaned


def rules_seed_defaults() -> int:
    """Create the default rule of every kind that has none (the data migration's rows, for a flushed database).
    Returns how many were created."""
    from fraud.models import Rule

    created = 0
    for kind, spec in RULE_KINDS.items():
        _rule, made = Rule.objects.get_or_create(
            kind=kind, defaults={"stage": spec.stage, "parameters": spec.default_params, "score": spec.default_score}
        )
        created += made
    return created
