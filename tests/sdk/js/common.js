// Helpers shared by the JS SDK scenarios.
const HTTP_PORT = process.env.DAPR_HTTP_PORT;
const GRPC_PORT = process.env.DAPR_GRPC_PORT;
const APP_PORT = process.env.APP_PORT;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

async function waitFor(cond, what, withinMs = 30000) {
  const end = Date.now() + withinMs;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`timed out waiting for ${what}`);
}

module.exports = { HTTP_PORT, GRPC_PORT, APP_PORT, fail, waitFor };
