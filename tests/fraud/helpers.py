"""Shared helpers of the fraud tests."""

from __future__ import annotations

import time

from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.forms import signup_started_token
from fraud.models import Rule
from tests.factories import UserFactory

PASSWORD = "a long and quiet river"


def set_rule(kind: str, **changes) -> Rule:
    rule = Rule.objects.get(kind=kind)
    for name, value in changes.items():
        if name in ("score", "active"):
            setattr(rule, name, value)
        else:
            rule.parameters = {**rule.parameters, name: value}
    rule.save()
    return rule


def only_rules(*kinds: str) -> None:
    """Deactivate every rule but these: a test then sees one signal at a time."""
    Rule.objects.exclude(kind__in=kinds).update(active=False)
    Rule.objects.filter(kind__in=kinds).update(active=True)


def fraud_staff(**extra):
    user = UserFactory(is_staff=True, email=extra.pop("email", "analyst@tollbooth.example"), **extra)
    user.groups.add(Group.objects.get_or_create(name="fraud")[0])
    return user


def signup_post(client, email: str, *, ip: str = "198.51.100.7", seconds_ago: float = 30, **extra):
    data = {
        "email": email,
        "password1": PASSWORD,
        "password2": PASSWORD,
        "started": signup_started_token(time.time() - seconds_ago),
        **extra,
    }
    return client.post(reverse("account_signup"), data, REMOTE_ADDR=ip)
