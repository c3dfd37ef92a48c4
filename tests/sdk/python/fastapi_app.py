"""A FastAPI subscriber (dapr-ext-fastapi DaprApp) behind sidebus over HTTP."""
import threading

import uvicorn
from fastapi import Body, FastAPI
from dapr.ext.fastapi import DaprApp

from common import APP_PORT, fail, healthz_ok, publish_http, wait_for

app = FastAPI()
dapr_app = DaprApp(app)
received = []


@dapr_app.subscribe(pubsub="pubsub", topic="py-fastapi")
def on_order(event_data=Body()):
    received.append(event_data)
    return {"status": "SUCCESS"}


server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=APP_PORT, log_level="warning"))
threading.Thread(target=server.run, daemon=True).start()
wait_for(healthz_ok, "sidebus to be ready (subscriptions discovered)")
publish_http("py-fastapi", '{"order": 7}', "application/json")
wait_for(lambda: len(received) == 1, "the FastAPI handler")
ev = received[0]
if ev.get("data") != {"order": 7} or ev.get("topic") != "py-fastapi":
    fail(f"unexpected CloudEvent: {ev!r}")
server.should_exit = True
print("ok")
