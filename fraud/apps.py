from django.apps import AppConfig


class FraudConfig(AppConfig):
    name = "fraud"
    verbose_name = "Fraud"

    def ready(self):
        from fraud import receivers  # noqa: F401  (connect its signal receivers)
