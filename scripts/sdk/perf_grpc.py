"""Rough gRPC figures against a running sidebus (DAPR_GRPC_PORT):
sequential PublishEvent latency, and publish -> streaming-subscription
throughput. Run with the SDK venv's python (scripts/sdk/install.sh):
  .scratch/sdk/venv/bin/python scripts/sdk/perf_grpc.py [N]
"""
import os
import statistics
import sys
import threading
import time

import grpc
from dapr.proto.runtime.v1 import pubsub_pb2 as api
from dapr.proto.runtime.v1 import dapr_pb2_grpc as stubs
from dapr.proto.runtime.v1 import appcallback_pb2 as cb

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
chan = grpc.insecure_channel(f"127.0.0.1:{os.environ.get('DAPR_GRPC_PORT', '50001')}")
dapr = stubs.DaprStub(chan)

# 1. Sequential publish latency (nobody subscribed: the bus discards).
lat = []
for i in range(N):
    t = time.perf_counter()
    dapr.PublishEvent(api.PublishEventRequest(pubsub_name="pubsub", topic="perf-pub",
                                              data=b"x" * 1024, data_content_type="text/plain"))
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"PublishEvent 1KiB sequential x{N}: p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, "
      f"p99 {q(0.99):.2f} ms, {N / (sum(lat) / 1000):.0f} req/s")

# 2. Streaming subscription: publish N, receive and ack N.
import queue
outq = queue.Queue()
outq.put(api.SubscribeTopicEventsRequestAlpha1(initial_request=api.SubscribeTopicEventsRequestInitialAlpha1(
    pubsub_name="pubsub", topic="perf-stream", metadata={"ordering": "none"})))
def requests():
    while True:
        m = outq.get()
        if m is None:
            return
        yield m
stream = dapr.SubscribeTopicEventsAlpha1(requests())
next(stream)  # initial_response
start = time.perf_counter()
def pub():
    for i in range(N):
        dapr.PublishEvent(api.PublishEventRequest(pubsub_name="pubsub", topic="perf-stream",
                                                  data=b"y" * 1024, data_content_type="text/plain"))
threading.Thread(target=pub, daemon=True).start()
got = 0
for msg in stream:
    ev = msg.event_message
    outq.put(api.SubscribeTopicEventsRequestAlpha1(event_processed=api.SubscribeTopicEventsRequestProcessedAlpha1(
        id=ev.id, status=cb.TopicEventResponse(status=0))))
    got += 1
    if got == N:
        break
el = time.perf_counter() - start
outq.put(None)
print(f"publish -> stream -> ack x{N}: {el:.2f} s, {N / el:.0f} events/s")
