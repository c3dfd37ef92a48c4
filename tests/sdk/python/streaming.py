"""Streaming subscription (client.subscribe): RETRY is redelivered, DROP
is not; then subscribe_with_handler."""
import requests
from dapr.clients import DaprClient
from dapr.clients.grpc._response import TopicEventResponse

from common import HTTP_PORT, fail, wait_for

with DaprClient() as client:
    sub = client.subscribe(pubsub_name="pubsub", topic="py-stream")
    client.publish_event(pubsub_name="pubsub", topic_name="py-stream", data="first")
    m1 = sub.next_message()
    sub.respond_retry(m1)
    m2 = sub.next_message()
    if m2.id() != m1.id():
        fail(f"RETRY was not redelivered: {m1.id()} then {m2.id()}")
    sub.respond_drop(m2)
    client.publish_event(pubsub_name="pubsub", topic_name="py-stream", data="second")
    m3 = sub.next_message()
    if m3.data() != "second":
        fail(f"DROP was redelivered: {m3.data()!r}")
    sub.respond_success(m3)
    sub.close()

    seen = []

    def handler(msg):
        seen.append(msg.data())
        return TopicEventResponse("success")

    close = client.subscribe_with_handler(pubsub_name="pubsub", topic="py-handler",
                                          handler_fn=handler)
    # The handler's stream opens in a thread: wait until sidebus lists it.
    wait_for(lambda: any(sub.get("topic") == "py-handler" and sub.get("type") == "STREAMING"
                         for sub in requests.get(f"http://127.0.0.1:{HTTP_PORT}/v1.0/metadata",
                                                 timeout=5).json().get("subscriptions", [])),
             "the handler's streaming subscription")
    client.publish_event(pubsub_name="pubsub", topic_name="py-handler", data="h")
    wait_for(lambda: seen == ["h"], "the handler to see the event")
    close()
print("ok")
