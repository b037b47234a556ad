from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from accounts import api as accounts_api
from accounts import views as accounts_views
from accounts.api_errors import api_not_found
from billing import api as billing_api
from billing import views as billing_views
from plans import api as plans_api

api_v1 = [
    path("me", accounts_api.MeView.as_view(), name="api-me"),
    path("account", accounts_api.AccountView.as_view(), name="api-account"),
    path("api-keys", accounts_api.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>", accounts_api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("plans", plans_api.PlanListView.as_view(), name="api-plans"),
    path("subscription", billing_api.SubscriptionView.as_view(), name="api-subscription"),
    path("checkout-sessions", billing_api.CheckoutSessionCreateView.as_view(), name="api-checkout-sessions"),
    path("invoices", billing_api.InvoiceListView.as_view(), name="api-invoices"),
]

urlpatterns = [
    path("", accounts_views.home, name="home"),
    path("accounts/", include("allauth.urls")),
    path("onboarding/", accounts_views.onboarding, name="onboarding"),
    path("dashboard/", accounts_views.dashboard, name="dashboard"),
    path("settings/api-keys/", accounts_views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:key_id>/revoke/", accounts_views.api_key_revoke, name="api_key_revoke"),
    path("pricing/", billing_views.pricing, name="pricing"),
    path("billing/", billing_views.billing, name="billing"),
    path("billing/checkout/", billing_views.checkout_start, name="checkout_start"),
    path("billing/checkout/success/", billing_views.checkout_success, name="checkout_success"),
    path("billing/checkout/cancelled/", billing_views.checkout_cancelled, name="checkout_cancelled"),
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
