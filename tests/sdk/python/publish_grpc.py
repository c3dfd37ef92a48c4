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
    if got[0] != {"n": 1} or sorted(got[1:]) != ["b1", "b2"]:
        fail(f"unexpected events: {got!r}")
print("ok")
