// The load generator both servers are measured with: raw WebSockets (the `ws` package) that
// speak just enough Engine.IO v4 / Socket.IO v5 to connect, join a room, answer pings, ack and
// time messages. No socket.io-client: with thousands of sockets in one process its per-socket
// machinery would be measured instead of the server. Test-only.
//
//   node loadgen.mjs '<json job>'   ->  one JSON line of results on stdout, progress on stderr
//
// Job: {url, clients, room, phase: "all", broadcasts, intervalMs, throughputSeconds, window}
//   connect storm: all clients open at once; accept rate = clients / time until every one has
//     its Socket.IO CONNECT answered and its join acked;
//   broadcasts: a publisher emits `publish` every intervalMs with its send time; each client
//     records receipt - send time (same process, same clock);
//   throughput: the publisher keeps `window` publishes in flight for throughputSeconds;
//     deliveries counted across clients.
import WebSocket from "ws";

const job = JSON.parse(process.argv[2]);
const log = (msg) => process.stderr.write(`[loadgen ${job.label ?? ""}] ${msg}\n`);
const wsUrl = job.url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
const now = () => performance.timeOrigin + performance.now();

class Client {
  constructor(onMessage) {
    this.ackId = 0;
    this.acks = new Map();
    this.onMessage = onMessage;
    this.connected = new Promise((resolve, reject) => { this.resolve = resolve; this.reject = reject; });
  }
  open() {
    const ws = (this.ws = new WebSocket(wsUrl, { perMessageDeflate: false }));
    ws.on("message", (buf) => this.frame(buf.toString()));
    const fail = (e) => {
      this.reject(e);
      for (const cb of this.acks.values()) cb(null, e); // a pending join fails instead of hanging
      this.acks.clear();
    };
    ws.on("error", fail);
    ws.on("close", (code) => fail(new Error(`closed by the server (${code})`)));
    return this.connected;
  }
  frame(s) {
    const t = s[0];
    if (t === "2") return this.ws.send("3"); // Engine.IO ping -> pong
    if (t === "0") return this.ws.send("40{}"); // Engine.IO open -> Socket.IO CONNECT
    if (t !== "4") return;
    const p = s[1];
    if (p === "0") return this.resolve();
    if (p === "4") return this.reject(new Error(`connect_error ${s.slice(2)}`));
    if (p === "3") { // ack: 43<id>[...]
      const m = /^43(\d+)/.exec(s);
      const cb = m && this.acks.get(Number(m[1]));
      if (cb) { this.acks.delete(Number(m[1])); cb(s.slice(m[0].length)); }
      return;
    }
    if (p === "2" && s.startsWith('42["message"')) this.onMessage(s);
  }
  call(event, data) {
    const id = ++this.ackId;
    return new Promise((resolve, reject) => {
      this.acks.set(id, (answer, error) => (error ? reject(error) : resolve(answer)));
      this.ws.send(`42${id}${JSON.stringify([event, data])}`);
    });
  }
  close() { this.ws.removeAllListeners("close"); this.ws.terminate(); }
}

function sentAt(frame) {
  // {"t":<ms>} is the data's first field: read it without parsing the whole frame.
  const i = frame.indexOf('"t":');
  return i < 0 ? NaN : parseFloat(frame.slice(i + 4, frame.indexOf(",", i)));
}

const latencies = [];
let deliveries = 0;
let recording = false;
const onMessage = (frame) => {
  deliveries++;
  if (recording) latencies.push(now() - sentAt(frame));
};

async function main() {
  const out = { clients: job.clients };
  // Connect storm: every client at once.
  const clients = Array.from({ length: job.clients }, () => new Client(onMessage));
  const t0 = now();
  await Promise.all(clients.map(async (c) => {
    await c.open();
    const ack = await c.call("join", { room: job.room });
    if (!ack.includes('"ok":true')) throw new Error(`join refused: ${ack}`);
  }));
  out.connect_seconds = (now() - t0) / 1000;
  out.accept_rate = job.clients / out.connect_seconds;
  log(`${job.clients} connected and joined in ${out.connect_seconds.toFixed(2)} s`);
  process.stdout.write(JSON.stringify({ connected: true }) + "\n");
  // Idle until the driver has read the server's memory.
  await new Promise((resolve) => process.stdin.once("data", resolve));

  const publisher = new Client(() => {});
  await publisher.open();
  // Broadcasts at a fixed interval.
  recording = true;
  for (let i = 0; i < job.broadcasts; i++) {
    publisher.call("publish", { room: job.room, data: { t: now(), seq: i } });
    await new Promise((r) => setTimeout(r, job.intervalMs));
  }
  await new Promise((r) => setTimeout(r, 2000)); // the last deliveries
  recording = false;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  out.broadcast_deliveries = latencies.length;
  out.broadcast_expected = job.broadcasts * job.clients;
  out.p50_ms = q(0.5);
  out.p99_ms = q(0.99);
  log(`broadcast p50 ${out.p50_ms.toFixed(1)} ms, p99 ${out.p99_ms.toFixed(1)} ms (${latencies.length}/${out.broadcast_expected})`);

  // Sustained throughput: keep `window` publishes in flight.
  if (job.throughputSeconds > 0) {
    process.stdout.write(JSON.stringify({ throughput_start: true }) + "\n");
    const start = deliveries;
    const t1 = now();
    const end = t1 + job.throughputSeconds * 1000;
    let seq = 0;
    const lane = async () => {
      while (now() < end) await publisher.call("publish", { room: job.room, data: { t: now(), seq: seq++ } });
    };
    await Promise.all(Array.from({ length: job.window }, lane));
    const elapsed = (now() - t1) / 1000;
    process.stdout.write(JSON.stringify({ throughput_end: true }) + "\n");
    await new Promise((r) => setTimeout(r, 1000));
    out.throughput_published = seq;
    out.throughput_deliveries = deliveries - start;
    out.deliveries_per_second = out.throughput_deliveries / elapsed;
    log(`throughput ${out.deliveries_per_second.toFixed(0)} deliveries/s (${seq} publishes)`);
  }
  publisher.close();
  for (const c of clients) c.close();
  process.stdout.write(JSON.stringify({ result: out }) + "\n");
  process.exit(0);
}

process.on("exit", (code) => { if (code) log(`exiting with ${code}`); });
main().catch((e) => { log(`failed: ${e.stack || e}`); process.exitCode = 1; setTimeout(() => process.exit(1), 100); });
