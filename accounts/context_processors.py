from accounts.decorators import request_membership


def current_account(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = request_membership(request)
    return {"current_membership": membership, "current_account": membership.account if membership else None}
