// A DaprServer (HTTP) subscriber receiving events published with DaprClient
// over gRPC (single + bulk) and HTTP.
const { DaprServer, DaprClient, CommunicationProtocolEnum } = require("@dapr/dapr");
const { HTTP_PORT, GRPC_PORT, APP_PORT, fail, waitFor } = require("./common");

(async () => {
  const server = new DaprServer({
    serverHost: "127.0.0.1",
    serverPort: String(APP_PORT),
    clientOptions: { daprHost: "127.0.0.1", daprPort: String(HTTP_PORT) },
  });
  const got = [];
  await server.pubsub.subscribe("pubsub", "js-sub", async (data) => {
    got.push(data);
  });
  await server.start();
  const grpc = new DaprClient({
    daprHost: "127.0.0.1",
    daprPort: String(GRPC_PORT),
    communicationProtocol: CommunicationProtocolEnum.GRPC,
  });
  let r = await grpc.pubsub.publish("pubsub", "js-sub", { via: "grpc" });
  if (r.error) fail(`gRPC publish failed: ${r.error}`);
  const bulk = await grpc.pubsub.publishBulk("pubsub", "js-sub", [{ via: "bulk" }]);
  if (bulk.failedMessages.length) fail(`bulk failed: ${JSON.stringify(bulk.failedMessages)}`);
  r = await server.client.pubsub.publish("pubsub", "js-sub", { via: "http" });
  if (r.error) fail(`HTTP publish failed: ${r.error}`);
  await waitFor(() => got.length >= 3, "three events at the DaprServer subscriber");
  const vias = got.map((d) => d.via).sort();
  if (JSON.stringify(vias) !== JSON.stringify(["bulk", "grpc", "http"])) fail(`unexpected events: ${JSON.stringify(got)}`);
  console.log("ok");
  process.exit(0);
})().catch((e) => fail(e.stack || JSON.stringify(e)));
