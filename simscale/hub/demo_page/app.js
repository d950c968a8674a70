// The demo page: one official SignalR client per pane, each connected to a different hub server.
// The demo process only serves this page and the counters (/api/state); chat messages travel
// browser -> hub server -> (Redis backplane) -> other hub server -> browser, never through it.
"use strict";

const PANES = ["a", "b"];
const STATE_POLL_MS = 1000;
let switching = false;

function $(id) { return document.getElementById(id); }

function setStatus(pane, text, kind) {
  const status = $(`status-${pane}`);
  status.textContent = text;
  status.className = `status ${kind || ""}`;
}

function addMessage(pane, user, message) {
  const item = document.createElement("li");
  item.textContent = `${user}: ${message}`;
  if (user === `pane ${pane.toUpperCase()}`) item.classList.add("own");
  const list = $(`messages-${pane}`);
  list.appendChild(item);
  list.scrollTop = list.scrollHeight;
}

function showCounters(server) {
  const rows = [
    ["connections", server.reachable ? server.connections : "unreachable"],
    ["messages / s", server.messages_per_s.toFixed(1)],
    ["delivered / s", server.deliveries_per_s.toFixed(1)],
    ["backplane publishes", server.publishes],
    ["backplane losses", server.losses],
    ["backplane", server.backplane_state],
  ];
  const list = $(`counters-${server.pane}`);
  list.replaceChildren(...rows.flatMap(([name, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dd.dataset.counter = name;
    return [dt, dd];
  }));
  $(`server-${server.pane}`).textContent = `${server.name} at ${server.url}`;
}

function showState(state) {
  state.servers.forEach(showCounters);
  const toggle = $("backplane-toggle");
  if (!switching) {
    toggle.checked = state.backplane_on;
    toggle.disabled = false;
    $("backplane-label").textContent = state.backplane_on ? "backplane on" : "backplane off";
  }
  $("redis-line").textContent =
    `Redis: ${state.redis_running ? "running" : "stopped"} · counters refresh every second`;
}

async function fetchState() {
  const response = await fetch("api/state");
  if (!response.ok) throw new Error(`api/state answered ${response.status}`);
  return response.json();
}

async function connect(pane, server) {
  // Straight to the hub's WebSocket (no negotiate request): the hub is on another port than the page.
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(server.url, { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
    .withAutomaticReconnect()
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  connection.on("ReceiveMessage", (user, message) => addMessage(pane, user, message));
  connection.onreconnecting(() => setStatus(pane, "reconnecting (connection lost)", "problem"));
  connection.onreconnected(() => setStatus(pane, "connected", "connected"));
  connection.onclose(() => setStatus(pane, "disconnected (connection lost)", "problem"));
  for (;;) {
    setStatus(pane, "connecting");
    try {
      await connection.start();
      setStatus(pane, "connected", "connected");
      return connection;
    } catch (error) {
      setStatus(pane, `disconnected (cannot reach ${server.name}; retrying)`, "problem");
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

const connections = {};

function wireCompose(pane) {
  $(`form-${pane}`).addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $(`input-${pane}`);
    const text = input.value.trim();
    const connection = connections[pane];
    if (!text) return;
    if (!connection || connection.state !== signalR.HubConnectionState.Connected) {
      addMessage(pane, "error", "not sent: this pane is not connected");
      return;
    }
    input.value = "";
    try {
      await connection.invoke("SendMessage", `pane ${pane.toUpperCase()}`, text);
    } catch (error) {
      addMessage(pane, "error", `not sent: ${error}`);
    }
  });
}

function wireToggle() {
  const toggle = $("backplane-toggle");
  toggle.addEventListener("change", async () => {
    const on = toggle.checked;
    switching = true;
    toggle.disabled = true;
    $("backplane-label").textContent = on ? "starting Redis…" : "stopping Redis…";
    try {
      const response = await fetch("api/backplane", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ on }),
      });
      const state = await response.json();
      switching = false;
      showState(state);
      if (state.error) $("backplane-label").textContent = `switch failed: ${state.error}`;
    } catch (error) {
      switching = false;
      $("backplane-label").textContent = `switch failed: ${error}`;
      toggle.disabled = false;
    }
  });
}

async function main() {
  PANES.forEach(wireCompose);
  if (typeof signalR === "undefined") {
    for (const pane of PANES) {
      setStatus(pane, "disconnected (the SignalR client did not load: run npm ci in simscale/hub/demo_page)", "problem");
    }
    return;
  }
  let state;
  try {
    state = await fetchState();
  } catch (error) {
    for (const pane of PANES) setStatus(pane, `disconnected (demo server unreachable: ${error})`, "problem");
    return;
  }
  showState(state);
  wireToggle();
  setInterval(() => fetchState().then(showState).catch(() => {
    $("redis-line").textContent = "the demo server does not answer";
  }), STATE_POLL_MS);
  await Promise.all(state.servers.map(async (server) => {
    connections[server.pane] = await connect(server.pane, server);
  }));
}

main();
