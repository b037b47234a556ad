"""Hosted HTML pages the sandbox serves to a browser (3-D Secure, Checkout, the billing portal).

Plain, accessible HTML forms: labelled fields, real buttons, no JavaScript. Each page module
registers its routes with ``auth=False`` and is listed in :data:`sandbox.resources.MODULES`.
"""

from __future__ import annotations

from html import escape

from werkzeug.wrappers import Response

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}"
    "label{display:block;margin:.75rem 0 .25rem;font-weight:600}"
    "input{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box}"
    "button{font-size:1rem;padding:.6rem 1rem;margin:.75rem .5rem 0 0}"
    ".error{color:#a00;border:1px solid #a00;padding:.5rem}.muted{color:#555}"
)


def page(title: str, body: str, status: int = 200) -> Response:
    """A complete HTML document; ``body`` is already-escaped HTML."""
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return Response(html, status, content_type="text/html; charset=utf-8")


def redirect(url: str) -> Response:
    """A 303 See Other to ``url`` (the browser follows with a GET)."""
    return Response("", 303, {"Location": url})


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency.upper()}"


__all__ = ["escape", "money", "page", "redirect"]
