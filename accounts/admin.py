"""Ops' view of users and merchants. Status changes and key revocations go through services (audited)."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Q

from accounts import services
from accounts.errors import DomainError
from accounts.models import Account, AccountStatus, ApiKey, AuditLog, Invitation, Membership, User


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows rows without letting the admin write them: changes go through services."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows staff read and never write here: they are records (audit, usage, Stripe's events), or change
    through services and actions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(ReadOnlyInline):
    # Read-only: role and access changes go through the team services (permissions, last owner, seats).
    model = Membership
    fields = ["user", "role", "is_active", "created_at"]


class InvitationInline(ReadOnlyInline):
    model = Invitation
    fields = ["email", "role", "status", "invited_by", "created_at", "expires_at", "send_count"]
    show_change_link = True


class ApiKeyInline(ReadOnlyInline):
    model = ApiKey
    fields = ["name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    show_change_link = True


class AuditInline(ReadOnlyInline):
    model = AuditLog
    fields = ["created_at", "actor_label", "action", "before", "after", "reason"]
    max_num = 0
    ordering = ["-created_at"]
    verbose_name_plural = "audit log (latest first)"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["date_joined", "last_login", "signup_ip"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name", "signup_ip"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


def _status_action(target: AccountStatus):
    def action(modeladmin, request, queryset):
        moved = 0
        for account in queryset:
            try:
                services.account_change_status(
                    account=account,
                    to=target,
                    actor=request.user,
                    reason=f"Set to {target.label.lower()} by staff in the admin",
                )
                moved += 1
            except DomainError as error:
                modeladmin.message_user(request, f"{account}: {error.message}", messages.ERROR)
        if moved:
            modeladmin.message_user(request, f"{moved} account(s) now {target.label.lower()}.", messages.SUCCESS)

    action.__name__ = f"mark_{target.value}"
    action.short_description = f"Mark selected accounts {target.label.lower()} (audited)"
    return action


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "country", "billing_email", "trial_ends_at", "created_at"]
    list_filter = ["status", "country"]
    search_fields = ["=id", "name", "slug", "billing_email", "memberships__user__email"]
    readonly_fields = ["slug", "status", "signup_ip", "provisioned_by", "created_at"]
    fields = [
        "name",
        "slug",
        "status",
        "country",
        "billing_email",
        "trial_ends_at",
        "signup_ip",
        "provisioned_by",
        "created_at",
    ]
    inlines = [MembershipInline, InvitationInline, ApiKeyInline, AuditInline]
    actions = [
        _status_action(AccountStatus.ACTIVE),
        _status_action(AccountStatus.SUSPENDED),
        _status_action(AccountStatus.BLOCKED),
        _status_action(AccountStatus.CLOSED),
    ]

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # An email domain ("@shop.example") finds every account with a member there.
        if search_term.startswith("@"):
            queryset |= self.model.objects.filter(Q(memberships__user__email__iendswith=search_term))
            may_have_duplicates = True
        return queryset, may_have_duplicates

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Edits go through the audited service (it re-reads and locks the row); status moves only via actions.
        changes = {field: form.cleaned_data[field] for field in form.changed_data}
        if changes:
            services.account_update_by_staff(account=obj, actor=request.user, changes=changes)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "account__name"]
    readonly_fields = ["account", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    exclude = ["secret_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are issued by merchants, who alone see the secret

    @admin.action(description="Revoke selected keys (audited)")
    def revoke(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key, actor=request.user)
        self.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "account", "role", "status", "created_at", "expires_at", "send_count"]
    list_filter = ["status", "role"]
    search_fields = ["email", "account__name", "=account__id"]
    readonly_fields = [
        "account",
        "email",
        "role",
        "status",
        "invited_by",
        "created_at",
        "expires_at",
        "last_sent_at",
        "send_count",
        "accepted_by",
        "accepted_at",
    ]
    actions = ["resend", "revoke"]

    def has_add_permission(self, request):
        return False

    def _each(self, request, queryset, action, done: str):
        count = 0
        for invitation in queryset:
            try:
                action(invitation=invitation, actor=request.user)
                count += 1
            except DomainError as error:
                self.message_user(request, f"{invitation.email}: {error.message}", messages.ERROR)
        if count:
            self.message_user(request, f"{count} invitation(s) {done}.", messages.SUCCESS)

    @admin.action(description="Resend selected invitations (audited)")
    def resend(self, request, queryset):
        self._each(request, queryset, services.invitation_resend, "sent again")

    @admin.action(description="Revoke selected invitations (audited)")
    def revoke(self, request, queryset):
        self._each(request, queryset, services.invitation_revoke, "revoked")


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "account", "actor_label", "action", "target"]
    list_filter = ["action"]
    search_fields = ["account__name", "actor_label", "action", "target", "=account__id"]
    date_hierarchy = "created_at"
    list_select_related = ["account"]
