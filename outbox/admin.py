from django.contrib import admin

from outbox.events import event_redeliver
from outbox.mail import email_send
from outbox.models import DomainEvent, EventDelivery, OutgoingEmail, WebhookEndpoint


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(admin.ModelAdmin):
    list_display = ("key", "subject", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status",)
    search_fields = ("key", "subject", "to")
    readonly_fields = [f.name for f in OutgoingEmail._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Send now (failed ones too)")
    def send_again(self, request, queryset):
        from django.utils import timezone

        queryset.exclude(status="sent").update(status="pending", next_attempt_at=timezone.now())
        sent = sum(email_send(email_pk=pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{sent} sent.")


class DeliveryInline(admin.TabularInline):
    model = EventDelivery
    extra = 0
    can_delete = False
    fields = ("target", "status", "attempts", "last_attempt_at", "next_attempt_at", "response_status", "last_error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DomainEvent)
class DomainEventAdmin(admin.ModelAdmin):
    list_display = ("type", "public_id", "account_id", "occurred_at")
    list_filter = ("type", "deliveries__status")
    search_fields = ("key", "account_id")
    readonly_fields = [f.name for f in DomainEvent._meta.fields]
    inlines = [DeliveryInline]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Send again to every endpoint (failed deliveries included)")
    def redeliver(self, request, queryset):
        queued = sum(event_redeliver(event=event) for event in queryset)
        self.message_user(request, f"{queued} deliveries queued.")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "account_id", "enabled", "event_types", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "account_id")
    readonly_fields = ("secret", "account_id")
