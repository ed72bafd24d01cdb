// A test client fleet on the official socket.io-client: N sockets that join rooms, track
// (epoch, offset) per room, and come back with them in the handshake `auth` after any drop.
// It is also the reference pattern for applications: see docs/workload.md.
//
//   node fleet-client.mjs --url http://127.0.0.1:3001 --clients 10 --rooms a,b [--transports websocket]
//
// stdout: one JSON line per notable event ({"ev": ...}); on SIGTERM/SIGINT, --seconds or "summary"
// on stdin, a final {"ev":"summary", ...} line with what every client received, then exit 0.
import { io } from "socket.io-client";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = args.url;
const count = Number(args.clients ?? 1);
const rooms = (args.rooms ?? "room").split(",");
const transports = (args.transports ?? "websocket,polling").split(",");
const seconds = Number(args.seconds ?? 0);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const clients = [];
for (let i = 0; i < count; i++) {
  const state = { id: i, session: null, pos: {}, seqs: {}, dups: 0, gaps: [], reasons: {}, connects: 0, shutdowns: 0,
                  recovered: 0, unrecovered: 0, pods: [], joinErrors: 0,
                  connectErrors: 0, reconnectMs: [], dropAt: null };
  const socket = io(url, {
    transports,
    // keep cookies in Node (the browser does it anyway): the load balancer's affinity cookie
    // holds a polling session on one backend
    withCredentials: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    // called on every (re)connect: hand back the session and the last offset of each room
    auth: (cb) => cb(state.session ? { session: state.session, rooms: state.pos } : {}),
  });
  socket.on("session", async (s) => {
    state.connects++;
    if (state.dropAt !== null) { state.reconnectMs.push(Date.now() - state.dropAt); state.dropAt = null; }
    state.session = s.session;
    state.pods.push(s.pod);
    for (const [room, r] of Object.entries(s.rooms)) {
      if (room === "*") continue;
      if (r.recovered) state.recovered++;
      else if (state.pos[room]) { state.unrecovered++; out({ ev: "unrecovered", id: i, room, reason: r.reason }); }
      if (r.epoch !== undefined && !(room in state.pos && r.recovered)) state.pos[room] = { epoch: r.epoch, offset: r.offset };
    }
    // Ready only once in every room: a join cut short by a disconnect is made again on the next
    // session (its handler runs again), one that timed out is retried while still connected (5
    // attempts: a join the server refuses is an error the test reports, not a loop).
    for (const room of rooms) {
      if (room in s.rooms) continue;
      let ack = { ok: false };
      for (let attempt = 0; attempt < 5 && !ack.ok && socket.connected; attempt++) {
        ack = await socket.timeout(5000).emitWithAck("join", { room }).catch((e) => ({ ok: false, error: String(e) }));
        if (!ack.ok) { state.joinErrors++; out({ ev: "join_error", id: i, room, error: ack.error }); }
      }
      if (!ack.ok) return;
      state.pos[room] = { epoch: ack.epoch, offset: ack.offset };
    }
    out({ ev: "ready", id: i, pod: s.pod, recovered: s.recovered });
  });
  socket.on("message", (m) => {
    const p = state.pos[m.room] ?? { epoch: m.epoch, offset: 0 };
    if (m.epoch === p.epoch && m.offset <= p.offset) { state.dups++; return; }
    if (m.epoch === p.epoch && m.offset !== p.offset + 1) state.gaps.push([m.room, p.offset, m.offset]);
    state.pos[m.room] = { epoch: m.epoch, offset: m.offset };
    const seq = m.data && m.data.seq;
    if (seq !== undefined) (state.seqs[m.room] ??= []).push(seq);
  });
  socket.on("gap", (g) => { state.gaps.push([g.room, g.reason]); out({ ev: "gap", id: i, ...g }); });
  socket.on("server_shutdown", (s) => { state.shutdowns++; });
  socket.on("disconnect", (reason) => {
    state.reasons[reason] = (state.reasons[reason] ?? 0) + 1;
    state.dropAt = Date.now();  // reconnect time: from here to the next session event
  });
  socket.on("connect_error", (e) => {
    state.connectErrors++;
    out({ ev: "connect_error", id: i, message: e.message, data: e.data ?? null });
  });
  clients.push({ socket, state });
}

let done = false;
function finish() {
  if (done) return;
  done = true;
  out({ ev: "summary", clients: clients.map((c) => ({ ...c.state, connected: c.socket.connected })) });
  for (const c of clients) c.socket.disconnect();
  setTimeout(() => process.exit(0), 100);
}
process.on("SIGTERM", finish);
process.on("SIGINT", finish);
// "progress" on stdin: one {"ev":"progress"} line with how many sockets are connected and, per
// room, the lowest last seq any client holds (a test waits on it instead of sleeping).
function progress() {
  const last = {};
  for (const room of rooms) {
    last[room] = Math.min(...clients.map((c) => (c.state.seqs[room] ?? [0]).at(-1)));
  }
  out({ ev: "progress", connected: clients.filter((c) => c.socket.connected).length, last });
}
process.stdin.on("data", (d) => {
  for (const line of String(d).split("\n")) {
    if (line.trim() === "summary") finish();
    else if (line.trim() === "progress") progress();
  }
});
if (seconds > 0) setTimeout(finish, seconds * 1000);
