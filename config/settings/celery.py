"""Celery: the broker comes from CELERY_BROKER_URL; environments set the default."""

from config.env import env_bool

CELERY_TIMEZONE = "UTC"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None  # tasks write their outcome to the database; nothing reads results
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # tasks are short and some are long batch jobs: no hoarding
CELERY_BEAT_SCHEDULE: dict = {
    # Closed usage periods are rated, written to the ledger and pushed to Stripe (the rating task
    # enqueues the push); every 10 minutes keeps overage within the hour of its finality window ending.
    "rate-closed-usage-periods": {"task": "billing.rate_closed_usage_periods", "schedule": 600.0},
    # Retries pushes that failed (their backoff, from 1 minute) or crashed (their 2-minute lease has run
    # out) even when nothing new was rated; every minute, so recovery after a Stripe outage takes minutes.
    # A run with nothing due is one indexed query.
    "push-ledger-entries": {"task": "billing.push_ledger_entries", "schedule": 60.0},
    # Stripe events whose task was lost (broker down at intake, a killed worker) or whose handler's retry is
    # due; every minute, so a handler's first retry (after a minute) is not late. Nothing due: one indexed query.
    "sweep-stripe-events": {"task": "billing.sweep_stripe_events", "schedule": 60.0},
    # Emails whose send task was lost (broker down, a killed worker) or whose retry after a refusal is due.
    "send-due-emails": {"task": "outbox.send_due_emails", "schedule": 60.0},
    # Domain events' webhook and broker deliveries whose task was lost or whose retry is due (Stripe's schedule).
    "send-due-deliveries": {"task": "outbox.send_due_deliveries", "schedule": 60.0},
    # Usage far above the plan's daily share raises a fraud signal; hourly catches a burst within its day.
    "scan-usage-bursts": {"task": "fraud.scan_usage_bursts", "schedule": 3600.0},
    # Downgrades go onto Stripe within the last hour of their period (DOWNGRADE_LEAD); every 5 minutes
    # leaves a wide margin before the renewal invoice is drafted at the boundary.
    "apply-due-plan-changes": {"task": "billing.apply_due_plan_changes", "schedule": 300.0},
    # Reminders and trial ends are exactly-once by their rows; hourly bounds how late they can be.
    "send-reminders": {"task": "billing.send_reminders", "schedule": 3600.0},
    "end-trials": {"task": "billing.end_trials", "schedule": 3600.0},
    "dunning-enforce-grace": {"task": "billing.dunning_enforce_grace", "schedule": 3600.0},
    # Nightly (every 24 hours from beat's start; pin it to a quiet hour with a crontab in production).
    "reconcile": {"task": "billing.reconcile", "schedule": 86400.0},
}
