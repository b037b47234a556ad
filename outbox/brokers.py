"""Broker publishers: our domain events for the platform's internal consumers.

A publisher is any class with `publish(*, message_id, routing_key, body)` that returns once the broker has taken
the message durably and raises otherwise (the delivery is then retried on its schedule). Settings name them:

    TOLLBOOTH_EVENT_BROKERS = {"amqp": {"class": "outbox.brokers.AmqpPublisher", "url": "amqp://..."}}

`AmqpPublisher` publishes to RabbitMQ through kombu (Celery's own client, already installed) with publisher
confirms: a durable topic exchange `tollbooth.events`, the event type as routing key (`invoice.*`, `account.#`),
persistent messages whose `message_id` is the event's id, for consumers to deduplicate. docs/events.md shows a
Kafka publisher (confluent-kafka's idempotent producer) plugging in the same way.
"""

from __future__ import annotations

import threading

from kombu import Connection, Exchange

EXCHANGE = "tollbooth.events"


class AmqpPublisher:
    def __init__(self, *, url: str, exchange: str = EXCHANGE) -> None:
        self.url = url
        self.exchange = Exchange(exchange, type="topic", durable=True)
        self._local = threading.local()

    def _connection(self) -> Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or not connection.connected:
            connection = Connection(self.url, transport_options={"confirm_publish": True}, connect_timeout=5)
            connection.ensure_connection(max_retries=1)
            self._local.connection = connection
        return connection

    def publish(self, *, message_id: str, routing_key: str, body: bytes) -> None:
        try:
            producer = self._connection().Producer(serializer=None)
            producer.publish(
                body,
                exchange=self.exchange,
                routing_key=routing_key,
                declare=[self.exchange],
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=message_id,
                retry=False,
            )
        except Exception:
            self._local.connection = None  # reconnect on the next try
            raise
