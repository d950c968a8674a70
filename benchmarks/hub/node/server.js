// Node socket.io 4 peer for the simscale hub benchmark: "broadcast to all" over socket.io,
// optionally through @socket.io/redis-adapter. Prints the same ready line as `simscale hub serve`.
"use strict";
const fs = require("fs");
const http = require("http");
const https = require("https");
const { Server } = require("socket.io");

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

async function main() {
  const port = Number(option("--port", "0"));
  const redisUrl = option("--redis", "");
  const certPath = option("--tls-cert", "");
  const keyPath = option("--tls-key", "");
  const tls = certPath !== "" && keyPath !== "";
  const server = tls
    ? https.createServer({ cert: fs.readFileSync(certPath), key: fs.readFileSync(keyPath) })
    : http.createServer();
  // WebSocket only and no compression, like every other peer in the benchmark.
  const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });
  if (redisUrl !== "") {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  io.on("connection", (socket) => {
    socket.on("broadcast", (payload) => {
      io.emit("msg", payload);
    });
  });
  server.listen(port, "127.0.0.1", () => {
    const scheme = tls ? "https" : "http";
    process.stdout.write(`listening on ${scheme}://127.0.0.1:${server.address().port}\n`);
  });
  const stop = () => {
    io.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  process.stderr.write(`${error}\n`);
  process.exit(1);
});
