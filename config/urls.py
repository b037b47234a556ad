from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from accounts import api as accounts_api
from accounts import views as accounts_views
from accounts.api_errors import api_not_found
from billing import views as billing_views
from billing.api.changes import (
    SubscriptionCancelView,
    SubscriptionChangeView,
    SubscriptionPreviewView,
    SubscriptionReactivateView,
)
from billing.api.checkout import CheckoutSessionCreateView
from billing.api.invoices import InvoiceListView
from billing.api.subscription import SubscriptionView
from billing.api.usage import UsageEventsView, UsageView
from billing.stripe.intake import stripe_webhook
from events import api as events_api
from events import views as events_views
from plans import api as plans_api

api_v1 = [
    path("me", accounts_api.MeView.as_view(), name="api-me"),
    path("account", accounts_api.AccountView.as_view(), name="api-account"),
    path("api-keys", accounts_api.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>", accounts_api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("members", accounts_api.MemberListView.as_view(), name="api-members"),
    path("members/<int:member_id>", accounts_api.MemberDetailView.as_view(), name="api-member"),
    path(
        "members/<int:member_id>/deactivate",
        accounts_api.MemberActionView.as_view(action_name="deactivate"),
        name="api-member-deactivate",
    ),
    path(
        "members/<int:member_id>/reactivate",
        accounts_api.MemberActionView.as_view(action_name="reactivate"),
        name="api-member-reactivate",
    ),
    path(
        "members/<int:member_id>/transfer-ownership",
        accounts_api.MemberActionView.as_view(action_name="transfer"),
        name="api-member-transfer",
    ),
    path("invitations", accounts_api.InvitationListView.as_view(), name="api-invitations"),
    path("invitations/<int:invitation_id>", accounts_api.InvitationDetailView.as_view(), name="api-invitation"),
    path(
        "invitations/<int:invitation_id>/resend",
        accounts_api.InvitationResendView.as_view(),
        name="api-invitation-resend",
    ),
    path("plans", plans_api.PlanListView.as_view(), name="api-plans"),
    path("webhook-endpoints", events_api.WebhookEndpointListView.as_view(), name="api-webhook-endpoints"),
    path(
        "webhook-endpoints/<str:endpoint_id>",
        events_api.WebhookEndpointDetailView.as_view(),
        name="api-webhook-endpoint",
    ),
    path("events", events_api.EventListView.as_view(), name="api-events"),
    path("events/<str:event_id>", events_api.EventDetailView.as_view(), name="api-event"),
    path("events/<str:event_id>/redeliver", events_api.EventRedeliverView.as_view(), name="api-event-redeliver"),
    path("subscription", SubscriptionView.as_view(), name="api-subscription"),
    path("subscription/preview", SubscriptionPreviewView.as_view(), name="api-subscription-preview"),
    path("subscription/change", SubscriptionChangeView.as_view(), name="api-subscription-change"),
    path("subscription/cancel", SubscriptionCancelView.as_view(), name="api-subscription-cancel"),
    path(
        "subscription/reactivate",
        SubscriptionReactivateView.as_view(),
        name="api-subscription-reactivate",
    ),
    path("checkout-sessions", CheckoutSessionCreateView.as_view(), name="api-checkout-sessions"),
    path("invoices", InvoiceListView.as_view(), name="api-invoices"),
    path("usage-events", UsageEventsView.as_view(), name="api-usage-events"),
    path("usage", UsageView.as_view(), name="api-usage"),
]

urlpatterns = [
    path("", accounts_views.home, name="home"),
    # Browsers ask for /favicon.ico whatever the page says; answer instead of logging a 404 each time.
    path("favicon.ico", lambda request: redirect(static("tollbooth/favicon.svg"), permanent=True)),
    path("accounts/", include("allauth.urls")),
    path("onboarding/", accounts_views.onboarding, name="onboarding"),
    path("dashboard/", accounts_views.dashboard, name="dashboard"),
    path("settings/api-keys/", accounts_views.api_keys, name="api_keys"),
    path("settings/webhooks/", events_views.webhooks, name="webhooks"),
    path(
        "settings/webhooks/<str:endpoint_id>/<str:action>/",
        events_views.webhook_endpoint_action,
        name="webhook_endpoint_action",
    ),
    path("settings/events/<str:event_id>/redeliver/", events_views.event_redeliver, name="event_redeliver"),
    path("team/", accounts_views.team, name="team"),
    path("team/invite/", accounts_views.team_invite, name="team_invite"),
    path("team/members/<int:member_id>/role/", accounts_views.team_member_role, name="team_member_role"),
    path(
        "team/members/<int:member_id>/deactivate/", accounts_views.team_member_deactivate, name="team_member_deactivate"
    ),
    path(
        "team/members/<int:member_id>/reactivate/", accounts_views.team_member_reactivate, name="team_member_reactivate"
    ),
    path("team/members/<int:member_id>/transfer/", accounts_views.team_member_transfer, name="team_member_transfer"),
    path(
        "team/invitations/<int:invitation_id>/revoke/",
        accounts_views.team_invitation_revoke,
        name="team_invitation_revoke",
    ),
    path(
        "team/invitations/<int:invitation_id>/resend/",
        accounts_views.team_invitation_resend,
        name="team_invitation_resend",
    ),
    path("invitations/<str:token>/", accounts_views.invitation_accept, name="invitation_accept"),
    path("settings/api-keys/<int:key_id>/revoke/", accounts_views.api_key_revoke, name="api_key_revoke"),
    path("pricing/", billing_views.pricing, name="pricing"),
    path("terms/", TemplateView.as_view(template_name="terms.html"), name="terms"),
    path("billing/", billing_views.billing, name="billing"),
    path("billing/usage/", billing_views.usage, name="usage"),
    path("billing/checkout/", billing_views.checkout_start, name="checkout_start"),
    path("billing/change/", billing_views.plan_change, name="plan_change"),
    path("billing/cancel/", billing_views.subscription_cancel, name="subscription_cancel"),
    path("billing/fix-card/", billing_views.fix_card, name="fix_card"),
    path("billing/reactivate/", billing_views.subscription_reactivate, name="subscription_reactivate"),
    path("billing/checkout/success/", billing_views.checkout_success, name="checkout_success"),
    path("billing/checkout/cancelled/", billing_views.checkout_cancelled, name="checkout_cancelled"),
    path("admin/", admin.site.urls),
    # Stripe's webhooks: /stripe/webhook/<uuid of a djstripe.WebhookEndpoint>/ (verified, stored, answered at once)
    path("stripe/webhook/<uuid:uuid>/", stripe_webhook, name="stripe_webhook"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    # Anything else under /api/ answers in JSON, as the rest of the API does.
    re_path(r"^api/", api_not_found),
]

admin.site.site_header = "Tollbooth operations"
admin.site.site_title = "Tollbooth ops"
