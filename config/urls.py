from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from accounts import api as accounts_api
from accounts import views as accounts_views
from accounts.api_errors import api_not_found

api_v1 = [
    path("me", accounts_api.MeView.as_view(), name="api-me"),
    path("account", accounts_api.AccountView.as_view(), name="api-account"),
    path("api-keys", accounts_api.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>", accounts_api.ApiKeyDetailView.as_view(), name="api-key-detail"),
]

urlpatterns = [
    path("", accounts_views.home, name="home"),
    path("accounts/", include("allauth.urls")),
    path("onboarding/", accounts_views.onboarding, name="onboarding"),
    path("dashboard/", accounts_views.dashboard, name="dashboard"),
    path("settings/api-keys/", accounts_views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:key_id>/revoke/", accounts_views.api_key_revoke, name="api_key_revoke"),
    path("admin/", admin.site.urls),
    # dj-stripe's signed webhook endpoint: /stripe/webhook/<uuid of a djstripe.WebhookEndpoint>/
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    # Anything else under /api/ answers in JSON, as the rest of the API does.
    re_path(r"^api/", api_not_found),
]

admin.site.site_header = "Tollbooth operations"
admin.site.site_title = "Tollbooth ops"
