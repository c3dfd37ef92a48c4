"""Helpers shared by the Python SDK scenarios: env, waiting with deadlines."""
import os
import sys
import time
import urllib.request

HTTP_PORT = int(os.environ["DAPR_HTTP_PORT"])
APP_PORT = int(os.environ.get("APP_PORT", "0"))
DEADLINE = 30.0


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def wait_for(cond, what, within=DEADLINE):
    end = time.monotonic() + within
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    fail(f"timed out waiting for {what}")


def healthz_ok():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/v1.0/healthz", timeout=2) as r:
            return r.status == 204
    except Exception:
        return False


def publish_http(topic, body, content_type="text/plain", key=None):
    query = f"?metadata.partitionKey={key}" if key else ""
    req = urllib.request.Request(
        f"http://127.0.0.1:{HTTP_PORT}/v1.0/publish/pubsub/{topic}{query}",
        data=body.encode(), method="POST", headers={"content-type": content_type})
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status != 204:
            fail(f"publish over HTTP answered {r.status}")
