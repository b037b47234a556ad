"""The hosted Checkout page ``/_sandbox/checkout/{id}`` (a plain form), its 3-D Secure step, and the
programmatic ``POST /_sandbox/checkout/{id}/complete`` (same code path, JSON answer)."""

from __future__ import annotations

from sandbox.core import params as P
from sandbox.core.routing import ApiRequest, route
from sandbox.pages import escape, money, page, redirect
from sandbox.resources import checkout, checkout_completion


def _expiry(value: str | None) -> tuple[int | None, int | None]:
    if not value:
        return None, None
    month, _, year = value.replace(" ", "").partition("/")
    try:
        year_number = int(year)
        return int(month), year_number + 2000 if year_number < 100 else year_number
    except ValueError:
        return None, None


def _form(req: ApiRequest, session: dict, error: str | None = None, status: int = 200):
    items = req.store.meta_for(session["id"]).get("line_items", [])
    rows = "".join(
        f"<li>{escape(item['description'] or '')} x {item['quantity']}: "
        f"{escape(money(item['amount_total'], item['currency']))}"
        f" every {escape(item['price']['recurring']['interval'])}</li>"
        for item in items
    )
    trial = req.store.meta_for(session["id"]).get("subscription_data", {}).get("trial_period_days")
    summary = f"<ul>{rows}</ul>" if rows else "<p>Save a card for future payments.</p>"
    if trial:
        summary += f"<p>{trial}-day free trial: nothing is charged today.</p>"
    error_html = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    email = session["customer_email"] or ""
    email_field = (
        ""
        if session["customer"]
        else '<label for="email">Email</label>'
        f'<input id="email" name="email" type="email" autocomplete="email" required value="{escape(email)}">'
    )
    cancel = f'<p><a href="{escape(session["cancel_url"])}">Cancel and go back</a></p>' if session["cancel_url"] else ""
    button = "Subscribe" if session["mode"] == "subscription" else "Save card"
    body = (
        f"{summary}{error_html}"
        f'<form method="post" action="/_sandbox/checkout/{escape(session["id"])}">'
        f"{email_field}"
        '<label for="card">Card number</label>'
        '<input id="card" name="card" inputmode="numeric" autocomplete="cc-number" required>'
        '<label for="exp">Expiry (MM / YY)</label>'
        '<input id="exp" name="exp" autocomplete="cc-exp" placeholder="12 / 34">'
        '<label for="cvc">CVC</label><input id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc">'
        '<label for="name">Name on card</label><input id="name" name="name" autocomplete="cc-name">'
        f'<button type="submit">{button}</button></form>{cancel}'
        '<p class="muted">Sandbox: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined, '
        "4000 0027 6000 3184 asks for 3-D Secure.</p>"
    )
    return page("Checkout", body, status)


def _after(req: ApiRequest, session: dict, result: checkout_completion.CheckoutResult):
    req.store.dirty = True
    if result.status == "complete":
        return redirect(checkout.success_redirect(session))
    if result.status == "requires_action":
        return redirect(f"/_sandbox/checkout/{session['id']}/3ds")
    return _form(req, session, result.error, 402 if session["status"] == "open" else 409)


@route("GET", "/_sandbox/checkout/<session_id>", auth=False)
def show(req: ApiRequest, session_id: str):
    session = checkout.get_session(req.store, session_id)
    if session["status"] != "open":
        return page("Checkout", f"<p>This Checkout Session is {escape(session['status'])}.</p>", 409)
    return _form(req, session)


@route("POST", "/_sandbox/checkout/<session_id>", auth=False)
def submit(req: ApiRequest, session_id: str):
    session = checkout.get_session(req.store, session_id)
    form = req.params
    exp_month, exp_year = _expiry(form.get("exp"))
    result = checkout_completion.submit_card(
        req.store,
        session,
        number=(form.get("card") or "").replace(" ", ""),
        email=form.get("email") or None,
        name=form.get("name") or None,
        exp_month=exp_month,
        exp_year=exp_year,
        cvc=form.get("cvc") or None,
    )
    return _after(req, session, result)


@route("GET", "/_sandbox/checkout/<session_id>/3ds", auth=False)
def three_d_secure(req: ApiRequest, session_id: str):
    checkout.get_session(req.store, session_id)
    body = (
        "<p>Your bank asks you to authenticate this payment.</p>"
        f'<form method="post" action="/_sandbox/checkout/{escape(session_id)}/3ds">'
        '<button type="submit" name="action" value="complete">Complete authentication</button>'
        '<button type="submit" name="action" value="fail">Fail authentication</button></form>'
    )
    return page("3-D Secure authentication", body)


@route("POST", "/_sandbox/checkout/<session_id>/3ds", auth=False)
def three_d_secure_submit(req: ApiRequest, session_id: str):
    session = checkout.get_session(req.store, session_id)
    result = checkout_completion.authenticate(req.store, session, req.params.get("action") == "complete")
    return _after(req, session, result)


@route("POST", "/_sandbox/checkout/<session_id>/complete", auth=False)
def complete(req: ApiRequest, session_id: str) -> dict:
    params = req.validate(
        {
            "card": str,
            "email": str,
            "name": str,
            "exp_month": int,
            "exp_year": int,
            "cvc": str,
            "three_d_secure": P.OneOf("complete", "fail"),
        }
    )
    P.require(params, "card")
    session = checkout.get_session(req.store, session_id)
    result = checkout_completion.submit_card(
        req.store,
        session,
        number=params["card"],
        email=params.get("email"),
        name=params.get("name"),
        exp_month=params.get("exp_month"),
        exp_year=params.get("exp_year"),
        cvc=params.get("cvc"),
    )
    if result.status == "requires_action" and params.get("three_d_secure"):
        result = checkout_completion.authenticate(req.store, session, params["three_d_secure"] == "complete")
    return {
        "object": "sandbox.checkout_result",
        "status": result.status,
        "error": result.error,
        "redirect_url": checkout.success_redirect(session) if result.status == "complete" else None,
        "session": session,
    }
