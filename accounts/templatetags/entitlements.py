"""{% load entitlements %} … {% has_feature "voice" as voice_on %}: gate a piece of a page on the plan."""

from django import template

from accounts.entitlements import request_entitlements

register = template.Library()


@register.simple_tag(takes_context=True)
def has_feature(context, feature: str) -> bool:
    request = context.get("request")
    account = context.get("current_account")
    if request is None or account is None:
        return False
    return request_entitlements(request, account).has(feature)
