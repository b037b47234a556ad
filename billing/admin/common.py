"""Helpers shared by billing's admin pages."""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html


def admin_link(obj, label=None):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or obj.id)
