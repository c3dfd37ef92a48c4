"""Publish over the HTTP API (as `requests` / the SDK's HTTP paths do),
received through a streaming subscription."""
import json

import requests

from dapr.clients import DaprClient

from common import HTTP_PORT, fail

with DaprClient() as client:
    sub = client.subscribe(pubsub_name="pubsub", topic="py-http")
    r = requests.post(f"http://127.0.0.1:{HTTP_PORT}/v1.0/publish/pubsub/py-http",
                      json={"via": "http"}, timeout=10)
    if r.status_code != 204:
        fail(f"HTTP publish answered {r.status_code}: {r.text}")
    r = requests.post(f"http://127.0.0.1:{HTTP_PORT}/v1.0-alpha1/publish/bulk/pubsub/py-http",
                      json=[{"entryId": "1", "event": "x", "contentType": "text/plain"}], timeout=10)
    if r.status_code != 204:
        fail(f"HTTP bulk publish answered {r.status_code}: {r.text}")
    got = []
    for _ in range(2):
        msg = sub.next_message()
        got.append(msg.data())
        sub.respond_success(msg)
    sub.close()
    # Unkeyed events may sit on different partitions of the default
    # (embedded) broker: compare what arrived, not the order.
    want = [{"via": "http"}, "x"]
    if sorted(map(json.dumps, got)) != sorted(map(json.dumps, want)):
        fail(f"unexpected events: {got!r}")
print("ok")
