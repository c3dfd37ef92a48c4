"""A gRPC subscriber (dapr.ext.grpc App) behind sidebus with
--app-protocol grpc: SUCCESS, RETRY redelivered, DROP not."""
import threading

from cloudevents.sdk.event import v1
from dapr.clients.grpc._response import TopicEventResponse
from dapr.ext.grpc import App

from common import APP_PORT, fail, healthz_ok, publish_http, wait_for

app = App()
calls = {"ok": [], "retry": [], "drop": []}


@app.subscribe(pubsub_name="pubsub", topic="py-grpc-ok")
def ok(event: v1.Event):
    calls["ok"].append(event.data)


@app.subscribe(pubsub_name="pubsub", topic="py-grpc-retry")
def retry(event: v1.Event):
    calls["retry"].append(event.id)
    return TopicEventResponse("retry" if len(calls["retry"]) == 1 else "success")


@app.subscribe(pubsub_name="pubsub", topic="py-grpc-drop")
def drop(event: v1.Event):
    calls["drop"].append(text(event.data))
    return TopicEventResponse("drop")


def text(data):
    return data.decode() if isinstance(data, bytes) else data


threading.Thread(target=app.run, kwargs={"app_port": APP_PORT, "listen_address": "127.0.0.1"},
                 daemon=True).start()
wait_for(healthz_ok, "sidebus to be ready (subscriptions discovered)")
publish_http("py-grpc-ok", "hello")
publish_http("py-grpc-retry", "again")
publish_http("py-grpc-drop", "gone", key="k")
wait_for(lambda: len(calls["ok"]) == 1, "the SUCCESS handler")
wait_for(lambda: len(calls["retry"]) == 2, "the RETRY redelivery")
wait_for(lambda: len(calls["drop"]) == 1, "the DROP handler")
if calls["retry"][0] != calls["retry"][1]:
    fail(f"RETRY redelivered another event: {calls['retry']}")
data = calls["ok"][0]
if (data.decode() if isinstance(data, bytes) else data) != "hello":
    fail(f"unexpected data: {data!r}")
# DROP must not come back. A marker with the same key follows "gone" in its
# delivery lane and partition, so once the marker is here every delivery of
# "gone" (a redelivery included) has happened.
publish_http("py-grpc-drop", "marker", key="k")
wait_for(lambda: "marker" in calls["drop"], "the marker behind the DROP event")
if calls["drop"].count("gone") != 1:
    fail(f"DROP was redelivered: {calls['drop']}")
app.stop()
print("ok")
