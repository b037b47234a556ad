"""The device cookie: a random id per browser, so velocity and blocks follow a browser across email addresses."""

from __future__ import annotations

import secrets

from django.conf import settings

# Two years: long enough to recognise a returning farm, and renewed on no request (it never needs to change).
DEVICE_COOKIE_MAX_AGE = 2 * 365 * 24 * 3600
DEVICE_PATHS = ("/accounts/",)  # signup, login: the pages a fraudster has to pass through


class DeviceCookieMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        name = settings.FRAUD_DEVICE_COOKIE
        if request.path.startswith(DEVICE_PATHS) and name not in request.COOKIES:
            response.set_cookie(
                name,
                secrets.token_urlsafe(18),
                max_age=DEVICE_COOKIE_MAX_AGE,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response
