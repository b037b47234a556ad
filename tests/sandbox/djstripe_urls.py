"""dj-stripe's own webhook view, routed only for the sandbox's compatibility test: the product's intake
(billing.stripe.intake) replaces it, but the sandbox's events must stay processable by dj-stripe itself."""

from django.urls import include, path

urlpatterns = [path("stripe/", include("djstripe.urls", namespace="djstripe"))]
