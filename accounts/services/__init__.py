"""Accounts' writes, one module per concern; the names callers use are re-exported here."""

from accounts.services.api_keys import API_KEY_PREFIX, api_key_authenticate, api_key_create, api_key_revoke
from accounts.services.audit import SYSTEM, audit_record, plain_value
from accounts.services.invitations import (
    INVITATION_SALT,
    RateLimited,
    invitation_accept,
    invitation_accept_as_new_user,
    invitation_create,
    invitation_from_token,
    invitation_resend,
    invitation_revoke,
    invitation_token,
    invitation_url,
)
from accounts.services.members import (
    membership_change_role,
    membership_deactivate,
    membership_reactivate,
    ownership_transfer,
)
from accounts.services.provisioning import (
    ACCOUNT_NAME_MAX,
    EDITABLE_ACCOUNT_FIELDS,
    STAFF_EDITABLE_ACCOUNT_FIELDS,
    account_provision,
    account_send_welcome,
    account_update,
    account_update_by_staff,
)
from accounts.services.roles import INVITABLE_ROLES, MANAGER_ROLES, membership_is_manager, require_manager
from accounts.services.seats import NO_ADDITIONS_STATUSES, seats_in_use
from accounts.services.standing import (
    NO_STANDING_STATUSES,
    UNDER_REVIEW_MESSAGE,
    account_in_good_standing,
    account_mark_trusted,
    account_set_risk_hold,
    require_good_standing,
    require_not_on_hold,
    user_set_signup_risk_hold,
)
from accounts.services.status import ALLOWED_TRANSITIONS, account_change_status, account_set_plan

__all__ = [
    "ACCOUNT_NAME_MAX",
    "ALLOWED_TRANSITIONS",
    "API_KEY_PREFIX",
    "EDITABLE_ACCOUNT_FIELDS",
    "INVITABLE_ROLES",
    "INVITATION_SALT",
    "MANAGER_ROLES",
    "NO_ADDITIONS_STATUSES",
    "NO_STANDING_STATUSES",
    "STAFF_EDITABLE_ACCOUNT_FIELDS",
    "SYSTEM",
    "UNDER_REVIEW_MESSAGE",
    "RateLimited",
    "account_change_status",
    "account_in_good_standing",
    "account_mark_trusted",
    "account_provision",
    "account_send_welcome",
    "account_set_plan",
    "account_set_risk_hold",
    "account_update",
    "account_update_by_staff",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "audit_record",
    "invitation_accept",
    "invitation_accept_as_new_user",
    "invitation_create",
    "invitation_from_token",
    "invitation_resend",
    "invitation_revoke",
    "invitation_token",
    "invitation_url",
    "membership_change_role",
    "membership_deactivate",
    "membership_is_manager",
    "membership_reactivate",
    "ownership_transfer",
    "plain_value",
    "require_good_standing",
    "require_manager",
    "require_not_on_hold",
    "seats_in_use",
    "user_set_signup_risk_hold",
]
