#!/usr/bin/env python3
"""A minimal sidebus/Dapr subscriber using only the standard library.

    python3 examples/subscriber.py 6002

Serves GET /dapr/subscribe (subscribes to topic `orders` on pubsub `pubsub`)
and prints every CloudEvent POSTed to /orders as one JSON line on stdout.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUBSCRIPTIONS = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/dapr/subscribe":
            self.send_error(404)
            return
        self.reply(SUBSCRIPTIONS)

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        event = json.loads(self.rfile.read(length))
        print(json.dumps(event, sort_keys=True), flush=True)
        self.reply({"status": "SUCCESS"})

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6002
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
