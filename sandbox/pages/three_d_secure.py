"""The hosted 3-D Secure page: ``GET /_sandbox/3ds/{intent_id}`` with "Complete" / "Fail" buttons.

Its form posts back to the same URL (``action=complete|fail``); the intent is finished through
:func:`sandbox.payments.engine.authenticate` and the browser is redirected (303) to the intent's
``return_url``, or shown the result if it has none.
"""

from __future__ import annotations

from sandbox.core import errors
from sandbox.core.routing import ApiRequest, route
from sandbox.pages import escape, money, page, redirect
from sandbox.payments import engine as payments


def _intent(req: ApiRequest, intent_id: str) -> dict:
    kind = "setup_intent" if intent_id.startswith("seti_") else "payment_intent"
    intent = req.store.get(kind, intent_id)
    if intent is None:
        raise errors.resource_missing(kind, intent_id)
    return intent


@route("GET", "/_sandbox/3ds/<intent_id>", auth=False)
def show(req: ApiRequest, intent_id: str):
    intent = _intent(req, intent_id)
    if intent["status"] != "requires_action":
        return page("3-D Secure", f"<p>Nothing to authenticate: this intent is {escape(intent['status'])}.</p>", 409)
    what = money(intent["amount"], intent["currency"]) if intent["object"] == "payment_intent" else "saving your card"
    pm = req.store.get("payment_method", intent["payment_method"])
    card = f"{pm['card']['brand']} ending {pm['card']['last4']}" if pm else "your card"
    body = (
        f"<p>Your bank asks you to confirm {escape(what)} with {escape(card)}.</p>"
        f'<p class="muted">Sandbox test page: choose the result of the authentication.</p>'
        f'<form method="post" action="/_sandbox/3ds/{escape(intent_id)}">'
        '<button type="submit" name="action" value="complete">Complete authentication</button>'
        '<button type="submit" name="action" value="fail">Fail authentication</button>'
        "</form>"
    )
    return page("3-D Secure authentication", body)


@route("POST", "/_sandbox/3ds/<intent_id>", auth=False)
def submit(req: ApiRequest, intent_id: str):
    action = req.params.get("action")
    if action not in ("complete", "fail"):
        raise errors.invalid_request("action must be complete or fail", "action")
    intent = payments.authenticate(req.store, intent_id, approve=action == "complete")
    return_url = req.store.meta_for(intent_id).get("return_url")
    if return_url:
        separator = "&" if "?" in return_url else "?"
        key = "setup_intent" if intent["object"] == "setup_intent" else "payment_intent"
        return redirect(f"{return_url}{separator}{key}={intent_id}&redirect_status={intent['status']}")
    return page("3-D Secure", f"<p>Authentication finished: the payment is {escape(intent['status'])}.</p>")
