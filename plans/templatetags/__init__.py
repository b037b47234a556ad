"""Template filters of plans: amounts in minor units shown as money."""
