"""Fraud in the admin: the review queue, rules, the blocklist, signals and chargeback cases.

Only active staff in the "fraud" group see any of it (superusers outside the group do not). Views and actions
are thin: forms validate, services decide and audit.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.errors import DomainError
from fraud import selectors
from fraud.blocklist import blocklist_value_normalize
from fraud.models import BlocklistEntry, DisputeCase, RiskAssessment, RiskSignal, Rule
from fraud.rules import RULE_KINDS, ParameterError, rule_parameters_validate
from fraud.services import assessment_approve, assessment_block, dispute_submit_evidence, is_fraud_staff


class FraudStaffOnly:
    """Every permission of a fraud admin page is membership of the "fraud" group."""

    def has_module_permission(self, request):
        return is_fraud_staff(request.user)

    def has_view_permission(self, request, obj=None):
        return is_fraud_staff(request.user)

    def has_add_permission(self, request):
        return is_fraud_staff(request.user)

    def has_change_permission(self, request, obj=None):
        return is_fraud_staff(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_fraud_staff(request.user)


class ReadOnly(FraudStaffOnly):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- rules -------------------------------------------------------------------------------------------------


class RuleForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=[(kind, kind) for kind in RULE_KINDS])

    class Meta:
        model = Rule
        fields = ["kind", "parameters", "score", "active", "description"]

    def clean_score(self):
        score = self.cleaned_data["score"]
        if score is None or not 0 <= score <= 1000:
            raise ValidationError("The score must be between 0 and 1000.")
        return score

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind and "parameters" in cleaned:
            try:
                cleaned["parameters"] = rule_parameters_validate(kind=kind, parameters=cleaned["parameters"])
            except ParameterError as error:
                self.add_error(error.field, error.message)
        return cleaned

    def save(self, commit=True):
        self.instance.stage = RULE_KINDS[self.cleaned_data["kind"]].stage
        return super().save(commit=commit)


@admin.register(Rule)
class RuleAdmin(FraudStaffOnly, admin.ModelAdmin):
    form = RuleForm
    list_display = ["kind", "stage", "score", "active", "parameters_shown", "updated_at"]
    list_filter = ["stage", "active"]
    list_editable = ["active"]
    readonly_fields = ["stage", "kind_help"]
    fields = ["kind", "kind_help", "stage", "parameters", "score", "active", "description"]

    @admin.display(description="parameters")
    def parameters_shown(self, rule):
        return json.dumps(rule.parameters, sort_keys=True)

    @admin.display(description="what it checks")
    def kind_help(self, rule):
        spec = RULE_KINDS.get(rule.kind)
        if spec is None:
            return "Choose a kind and save to see its description."
        params = ", ".join(f"{name} ({p.minimum} to {p.maximum})" for name, p in spec.params.items()) or "none"
        return f"{spec.description} Parameters: {params}."


# --- blocklist ---------------------------------------------------------------------------------------------


class BlocklistEntryForm(forms.ModelForm):
    class Meta:
        model = BlocklistEntry
        fields = ["kind", "value", "reason", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") and cleaned.get("value"):
            try:
                cleaned["value"] = blocklist_value_normalize(kind=cleaned["kind"], value=cleaned["value"])
            except ValidationError as error:
                self.add_error("value", error)
            else:
                duplicate = BlocklistEntry.objects.filter(kind=cleaned["kind"], value__iexact=cleaned["value"])
                if self.instance.pk:
                    duplicate = duplicate.exclude(pk=self.instance.pk)
                if duplicate.exists():
                    self.add_error("value", "This value is already on the blocklist.")
        return cleaned


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(FraudStaffOnly, admin.ModelAdmin):
    form = BlocklistEntryForm
    list_display = ["kind", "value", "reason", "expires_at", "created_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["value", "reason"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


# --- review queue ------------------------------------------------------------------------------------------


class SignalInline(ReadOnly, admin.TabularInline):
    model = RiskSignal

    def has_add_permission(self, request, obj=None):
        return False

    fields = ["code", "score", "details"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [("open", "Open reviews"), ("all", "All decisions")]

    def queryset(self, request, queryset):
        if self.value() in (None, "open"):
            return queryset.filter(decision="review", resolved_at__isnull=True)
        return queryset

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(RiskAssessment)
class RiskAssessmentAdmin(ReadOnly, admin.ModelAdmin):
    """The review queue: open reviews newest first; the detail page tells the account's story."""

    list_display = ["created_at", "who", "stage", "score", "decision", "reasons_shown", "decided_by"]
    list_filter = [QueueFilter, "stage", "decision", "decided_by"]
    search_fields = ["email", "account__name", "account__billing_email", "ip", "device_id"]
    ordering = ["-created_at", "-id"]
    inlines = [SignalInline]
    actions = ["approve", "block"]
    list_select_related = ["account"]
    readonly_fields = [
        "account", "email", "user", "stage", "score", "decision", "decided_by", "staff", "note", "ip",
        "ip_country", "device_id", "cooloff_until", "resolved_at", "created_at", "story",
    ]  # fmt: skip

    def has_change_permission(self, request, obj=None):
        # The detail page is viewable; nothing on it is editable. Actions need the "change" right to show.
        return is_fraud_staff(request.user)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("signals")

    @admin.display(description="account / signup")
    def who(self, assessment):
        return assessment.account.name if assessment.account_id else assessment.email

    @admin.display(description="reasons")
    def reasons_shown(self, assessment):
        return ", ".join(f"{signal.code} (+{signal.score})" for signal in assessment.signals.all()) or "—"

    @admin.display(description="the account's story")
    def story(self, assessment):
        story = selectors.account_story(assessment=assessment)
        history = format_html_join(
            "",
            "<li>{} — {} {} ({}) by {}: {}</li>",
            (
                (a.created_at.strftime("%Y-%m-%d %H:%M"), a.get_stage_display(), a.decision, a.score, a.decided_by,
                 ", ".join(s.code for s in a.signals.all()) or a.note or "—")
                for a in story["history"]
            ),
        )  # fmt: skip
        related = format_html_join(
            "",
            "<li>{} — {} from IP {} ({})</li>",
            (
                (a.created_at.strftime("%Y-%m-%d %H:%M"), a.email or "?", a.ip or "?", a.decision)
                for a in story["related"]
            ),
        )
        audit = format_html_join(
            "",
            "<li>{} — {} {} {}</li>",
            ((e.created_at.strftime("%Y-%m-%d %H:%M"), e.actor_label, e.action, e.reason) for e in story["audit"]),
        )
        return format_html(
            "<h4>Assessments</h4><ul>{}</ul><h4>Other signups from this IP or browser (30 days)</h4><ul>{}</ul>"
            "<h4>Audit log</h4><ul>{}</ul>",
            history or "—",
            related or mark_safe("<li>none</li>"),  # a constant: nothing to escape
            audit or mark_safe("<li>none</li>"),
        )

    def _decide(self, request, queryset, service, verb):
        done = 0
        for assessment in queryset:
            try:
                service(assessment=assessment, actor=request.user, note=f"{verb} from the review queue")
            except DomainError as error:
                self.message_user(request, f"Assessment {assessment.pk}: {error.message}", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} review(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Approve: release the hold")
    def approve(self, request, queryset):
        self._decide(request, queryset, assessment_approve, "approved")

    @admin.action(description="Block the account")
    def block(self, request, queryset):
        self._decide(request, queryset, assessment_block, "blocked")


@admin.register(RiskSignal)
class RiskSignalAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "code", "stage", "score", "account", "assessment"]
    list_filter = ["stage", "code"]
    search_fields = ["code", "account__name"]
    list_select_related = ["account", "assessment"]


# --- chargebacks -------------------------------------------------------------------------------------------


@admin.register(DisputeCase)
class DisputeCaseAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "dispute_id", "account", "reason", "amount_cents", "currency", "status"]
    list_filter = ["status", "reason"]
    search_fields = ["dispute_id", "charge_id", "account__name"]
    actions = ["submit_evidence"]
    readonly_fields = [
        "dispute_id", "charge_id", "account", "reason", "amount_cents", "currency", "status", "submitted_at",
        "submitted_by", "created_at", "packet",
    ]  # fmt: skip
    exclude = ["evidence"]

    def has_change_permission(self, request, obj=None):
        return is_fraud_staff(request.user)

    @admin.display(description="evidence packet")
    def packet(self, case):
        stripe_fields = case.evidence.get("stripe") or {}
        story = json.dumps(case.evidence.get("story") or {}, indent=2, sort_keys=True, default=str)
        rows = format_html_join("", "<tr><th>{}</th><td><pre>{}</pre></td></tr>", sorted(stripe_fields.items()))
        return format_html(
            "<h4>Sent to Stripe</h4><table>{}</table><h4>The account's story</h4><pre>{}</pre>", rows, story
        )

    @admin.action(description="Submit the evidence to Stripe")
    def submit_evidence(self, request, queryset):
        for case in queryset:
            try:
                dispute_submit_evidence(case=case, actor=request.user)
            except Exception as error:  # Stripe refused or is down: say so, keep the case open
                self.message_user(request, f"{case.dispute_id}: not submitted ({error}).", messages.ERROR)
            else:
                self.message_user(request, f"{case.dispute_id}: evidence submitted.", messages.SUCCESS)
