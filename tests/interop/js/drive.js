// Drives the official @microsoft/signalr client against a simscale hub and prints one JSON line
// per observation on stdout, for the Python tests to assert on.
// usage: node drive.js <scenario> <hubUrl> <json|messagepack> <negotiate|skip|sse|longpolling|websockets> [token]
// (sse, longpolling, websockets: negotiate, then force that transport)
"use strict";
const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

const [scenario, url, protocolName, mode, token] = process.argv.slice(2);
const say = (event, data) => process.stdout.write(JSON.stringify({ event, ...data }) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function build(reconnect) {
  const options = {};
  if (mode === "skip") {
    options.skipNegotiation = true;
    options.transport = signalR.HttpTransportType.WebSockets;
  } else if (mode === "sse") {
    options.transport = signalR.HttpTransportType.ServerSentEvents;
  } else if (mode === "longpolling") {
    options.transport = signalR.HttpTransportType.LongPolling;
  } else if (mode === "websockets") {
    options.transport = signalR.HttpTransportType.WebSockets; // negotiates first
  }
  if (token) options.accessTokenFactory = () => token;
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(url, options)
    .configureLogging(signalR.LogLevel.Warning);
  if (protocolName === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  // The client asks for stateful reconnect; the server never grants it, so it must fall back.
  if (process.env.STATEFUL === "1") builder = builder.withStatefulReconnect();
  if (reconnect) builder = builder.withAutomaticReconnect([0, 200, 500, 1000, 1000, 1000, 1000, 1000]);
  return builder.build();
}

function transportName(connection) {
  // HubConnection.connection is the HttpConnection; its transport is the class actually in use.
  const transport = connection.connection && connection.connection.transport;
  return transport ? transport.constructor.name : null;
}

function waitFor(connection, method, count, timeoutMs) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${method}`)), timeoutMs);
    connection.on(method, (...args) => {
      got.push(args);
      if (got.length >= count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

async function basic() {
  const connection = build(false);
  const received = waitFor(connection, "ReceiveMessage", 1, 5000);
  await connection.start();
  say("started", { connectionId: connection.connectionId, transport: transportName(connection) });
  say("echo", { value: await connection.invoke("Echo", { a: [1, 2.5, "x"], b: null }) });
  await connection.invoke("SendMessage", "alice", "hello");
  say("received", { args: (await received)[0] });
  await connection.invoke("JoinGroup", "room");
  const inGroup = new Promise((resolve) => connection.on("ReceiveMessage", (u, m) => m === "to-room" && resolve([u, m])));
  await connection.send("SendToGroup", "room", "bob", "to-room"); // non-blocking: no Completion expected
  say("group", { args: await inGroup });
  const items = [];
  await new Promise((resolve, reject) =>
    connection.stream("Counter", 5, 1).subscribe({ next: (v) => items.push(v), complete: resolve, error: reject }),
  );
  say("stream", { items });
  try {
    await connection.invoke("NoSuchMethod");
    say("error", { message: null });
  } catch (error) {
    say("error", { message: String(error.message) });
  }
  try {
    await connection.invoke("Echo");
    say("argerror", { message: null });
  } catch (error) {
    say("argerror", { message: String(error.message) });
  }
  // Cancel a slow stream after two items: the subscription is disposed, the server stops.
  const cancelled = [];
  await new Promise((resolve) => {
    const sub = connection.stream("Counter", 1000, 20).subscribe({
      next: (v) => {
        cancelled.push(v);
        if (cancelled.length === 2) {
          sub.dispose();
          resolve();
        }
      },
      complete: resolve,
      error: resolve,
    });
  });
  say("cancelled", { items: cancelled });
  say("echo2", { value: await connection.invoke("Echo", "still alive") });
  await connection.stop();
  say("stopped", {});
}

async function listen() {
  // Joins a group, reports readiness, then prints every ReceiveMessage until stdin closes.
  const connection = build(false);
  connection.on("ReceiveMessage", (user, message) => say("message", { user, message }));
  await connection.start();
  await connection.invoke("JoinGroup", "room");
  say("ready", { connectionId: connection.connectionId });
  await new Promise((resolve) => process.stdin.on("end", resolve).resume());
  await connection.stop();
}

async function reconnect() {
  // Stays connected through a server restart (or a Close with allowReconnect), then echoes again.
  const connection = build(true);
  connection.onreconnecting((error) => say("reconnecting", { error: error ? String(error.message) : null }));
  const back = new Promise((resolve) => connection.onreconnected((id) => resolve(id)));
  connection.onclose((error) => say("closed", { error: error ? String(error.message) : null }));
  await connection.start();
  say("ready", { connectionId: connection.connectionId });
  const id = await back;
  say("reconnected", { connectionId: id });
  say("echo", { value: await connection.invoke("Echo", "after") });
  await connection.stop();
}

async function closed() {
  // Reports how the connection ends (keep-alive and server-timeout tests).
  const connection = build(false);
  connection.serverTimeoutInMilliseconds = Number(process.env.SERVER_TIMEOUT_MS || 30000);
  const ended = new Promise((resolve) => connection.onclose((error) => resolve(error)));
  await connection.start();
  say("ready", {});
  const error = await Promise.race([ended, sleep(Number(process.env.HOLD_MS || 3000)).then(() => "alive")]);
  say("result", { value: error === "alive" ? "alive" : error ? String(error.message) : "closed" });
  if (error === "alive") await connection.stop();
}

async function connects() {
  // Starts COUNT connections (CONCURRENCY at a time), each one Echo, then stops them; prints how
  // many started and the errors of the others (a 404 names the status code).
  const count = Number(process.env.COUNT || 20);
  const concurrency = Number(process.env.CONCURRENCY || 4);
  let ok = 0;
  const failures = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      next += 1;
      const connection = build(false);
      try {
        await connection.start();
        await connection.invoke("Echo", "x");
        ok += 1;
        await connection.stop();
      } catch (error) {
        failures.push(String(error && error.message));
        try {
          await connection.stop();
        } catch {}
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  say("connects", { ok, failures });
}

async function survive() {
  // Connected with automatic reconnect; reports reconnects and every ReceiveMessage until stdin closes.
  const connection = build(true);
  connection.on("ReceiveMessage", (user, message) => say("message", { user, message }));
  connection.onreconnecting((error) => say("reconnecting", { error: error ? String(error.message) : null }));
  connection.onreconnected((id) => say("reconnected", { connectionId: id }));
  connection.onclose((error) => say("closed", { error: error ? String(error.message) : null }));
  await connection.start();
  say("ready", { connectionId: connection.connectionId });
  await new Promise((resolve) => process.stdin.on("end", resolve).resume());
  await connection.stop();
}

const scenarios = { basic, listen, reconnect, closed, connects, survive };
scenarios[scenario]()
  .then(() => process.exit(0))
  .catch((error) => {
    say("failed", { message: String(error && error.message) });
    process.exit(1);
  });
