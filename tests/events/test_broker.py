"""Our domain events published to a real RabbitMQ (127.0.0.1:5672, guest/guest) through the relay's pluggable
publisher: a consumer bound to the topic exchange gets each event once, with its id as message id; a broker that is
down is retried on the schedule like a webhook endpoint."""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from kombu import Connection, Exchange, Queue

from accounts.models import AccountStatus
from accounts.services import account_change_status
from outbox import deliveries
from outbox.brokers import EXCHANGE
from outbox.deliveries import deliveries_send_due, event_body
from outbox.models import DeliveryStatus, DomainEvent, EventDelivery

AMQP_URL = os.environ.get("TOLLBOOTH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _rabbitmq_unreachable() -> str | None:
    host = AMQP_URL.split("@")[-1].split("/")[0]
    name, _, port = host.partition(":")
    try:
        socket.create_connection((name, int(port or 5672)), timeout=2).close()
    except OSError as error:
        return f"RabbitMQ (the optional broker part) is not reachable at {host}: {error}"
    return None


pytestmark = pytest.mark.skipif(bool(_rabbitmq_unreachable()), reason=_rabbitmq_unreachable() or "")


@pytest.fixture
def broker(settings):
    """Our relay publishing to RabbitMQ, and a consumer's queue bound to account events."""
    settings.TOLLBOOTH_EVENT_BROKERS = {"amqp": {"class": "outbox.brokers.AmqpPublisher", "url": AMQP_URL}}
    deliveries._publishers.clear()
    with Connection(AMQP_URL) as connection:
        queue = Queue(
            f"test-consumer-{uuid.uuid4().hex[:8]}",
            Exchange(EXCHANGE, type="topic", durable=True),
            routing_key="account.#",
            auto_delete=True,
        )
        queue(connection.default_channel).declare()
        yield connection, queue
        queue(connection.default_channel).delete()
    deliveries._publishers.clear()


def _received(connection, queue) -> list:
    messages = []
    bound = queue(connection.default_channel)
    while (message := bound.get(no_ack=False)) is not None:
        messages.append(message)
        message.ack()
    return messages


def test_an_event_reaches_a_consumer_of_the_real_broker_once(owner, broker, django_capture_on_commit_callbacks):
    connection, queue = broker
    with django_capture_on_commit_callbacks(execute=True):
        account_change_status(account=owner.account, to=AccountStatus.SUSPENDED, actor=None, reason="overdue")
    event = DomainEvent.objects.get(type="account.suspended")
    delivery = EventDelivery.objects.get(event=event, target="broker:amqp")
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 1)
    [message] = _received(connection, queue)
    assert message.properties["message_id"] == event.public_id
    assert message.delivery_info["routing_key"] == "account.suspended"
    assert json.loads(message.body) == json.loads(event_body(event))
    assert deliveries_send_due() == 0 and _received(connection, queue) == []  # nothing published twice


def test_a_broker_that_is_down_is_retried_until_it_is_back(owner, broker, settings):
    connection, queue = broker
    settings.TOLLBOOTH_EVENT_BROKERS = {
        "amqp": {"class": "outbox.brokers.AmqpPublisher", "url": "amqp://guest:guest@127.0.0.1:9//"}
    }
    account_change_status(account=owner.account, to=AccountStatus.SUSPENDED, actor=None, reason="overdue")
    assert deliveries_send_due() == 0
    delivery = EventDelivery.objects.get(target="broker:amqp")
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_error
    settings.TOLLBOOTH_EVENT_BROKERS = {"amqp": {"class": "outbox.brokers.AmqpPublisher", "url": AMQP_URL}}
    deliveries._publishers.clear()  # the broker is back (here: at its real address)
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        assert deliveries_send_due() == 1
    [message] = _received(connection, queue)
    assert message.properties["message_id"] == delivery.event.public_id
