"""DaprClient (gRPC): single publish and bulk publish, checked end to end
through a streaming subscription."""
import json

from dapr.clients import DaprClient

from common import fail

with DaprClient() as client:
    sub = client.subscribe(pubsub_name="pubsub", topic="py-publish")
    client.publish_event(pubsub_name="pubsub", topic_name="py-publish",
                         data=json.dumps({"n": 1}), data_content_type="application/json")
    resp = client.publish_events(pubsub_name="pubsub", topic_name="py-publish",
                                 data=["b1", "b2"], data_content_type="text/plain")
    if resp.failed_entries:
        fail(f"bulk publish failed entries: {resp.failed_entries}")
    got = []
    for _ in range(3):
        msg = sub.next_message()
        got.append(msg.data())
        sub.respond_success(msg)
    sub.close()
    # Unkeyed events may sit on different partitions of the default
    # (embedded) broker, so their delivery order is not defined: compare
    # what arrived, not the order.
    want = [{"n": 1}, "b1", "b2"]
    if sorted(map(json.dumps, got)) != sorted(map(json.dumps, want)):
        fail(f"unexpected events: {got!r}")
print("ok")
