"""Events: recording them (emit), delivering them as signed webhooks (delivery), and the delivery fault modes."""
