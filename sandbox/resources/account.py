"""The one account behind every test key: ``GET /v1/account`` and ``GET /v1/accounts/{id}``.

dj-stripe asks ``GET /v1/account`` the first time it sees a secret key (``APIKey.refresh_account``)
and syncs the answer into its ``Account`` model, so this object must look complete: charges and
payouts enabled, nothing due.
"""

from __future__ import annotations

from sandbox.core import objects
from sandbox.core.errors import resource_missing
from sandbox.core.routing import ApiRequest, route
from sandbox.core.store import Store


def get_account(store: Store) -> dict:
    """The sandbox account, created on first use."""
    with store.lock:
        existing = next(store.all("account"), None)
        if existing is not None:
            return existing
        account_id = store.new_id("acct", 16)
        nothing_due = {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": [],
            "disabled_reason": None,
            "errors": [],
            "eventually_due": [],
            "past_due": [],
            "pending_verification": [],
        }
        account = objects.template("account")
        account["business_profile"].update(
            name="Stripe Sandbox", product_description="Local Stripe sandbox", support_email="sandbox@example.com"
        )
        account["settings"]["dashboard"]["display_name"] = "Stripe Sandbox"
        account.update(
            id=account_id,
            business_type="company",
            charges_enabled=True,
            created=store.now(),
            details_submitted=True,
            email="sandbox@example.com",
            external_accounts={
                "data": [],
                "has_more": False,
                "object": "list",
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            future_requirements=dict(nothing_due),
            metadata={},
            payouts_enabled=True,
            requirements=dict(nothing_due),
        )
        return store.insert(account)


@route("GET", "/v1/account")
def retrieve_own_account(req: ApiRequest) -> dict:
    req.validate({})
    return get_account(req.store)


@route("GET", "/v1/accounts/<account_id>")
def retrieve_account(req: ApiRequest, account_id: str) -> dict:
    req.validate({})
    account = get_account(req.store)
    if account_id != account["id"]:
        raise resource_missing("account", account_id)
    return account
