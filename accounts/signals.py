from django.dispatch import Signal

# Sent once an account's provisioning has committed; receivers get `account_id`.
account_provisioned = Signal()
