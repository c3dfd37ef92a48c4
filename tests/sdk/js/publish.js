// DaprClient publish and bulk publish over gRPC and over HTTP.
const { DaprClient, CommunicationProtocolEnum } = require("@dapr/dapr");
const { HTTP_PORT, GRPC_PORT, fail } = require("./common");

async function run(protocol, port) {
  const client = new DaprClient({
    daprHost: "127.0.0.1",
    daprPort: String(port),
    communicationProtocol: protocol,
  });
  const one = await client.pubsub.publish("pubsub", "js-publish", { hello: "world" });
  if (one.error) fail(`publish (${protocol}) failed: ${one.error}`);
  const bulk = await client.pubsub.publishBulk("pubsub", "js-publish", ["a", { b: 1 }]);
  if (bulk.failedMessages.length) fail(`bulk (${protocol}) failed: ${JSON.stringify(bulk.failedMessages)}`);
  // The SDK reports errors either as `{error}` or by rejecting with it,
  // depending on protocol and version; both are a refusal.
  const bad = await client.pubsub
    .publish("no-such-pubsub", "js-publish", { x: 1 })
    .catch((e) => e);
  if (!bad || !bad.error) fail(`publish (${protocol}) to an unknown pubsub did not fail`);
  await client.stop();
}

(async () => {
  await run(CommunicationProtocolEnum.GRPC, GRPC_PORT);
  await run(CommunicationProtocolEnum.HTTP, HTTP_PORT);
  console.log("ok");
  process.exit(0);
})().catch((e) => fail(e.stack || JSON.stringify(e)));
