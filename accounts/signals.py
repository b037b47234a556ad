from django.dispatch import Signal

# Sent once an account's provisioning has committed; receivers get `account_id`.
account_provisioned = Signal()

# Sent after commit when the number of active members may have changed; receivers get `account_id`
# and `change_id` (the audit row of the change, which names it for idempotency).
seats_changed = Signal()
