// The reference: a plain Node socket.io 4.8 server with default options, given the same
// event API as the wsfleet workload (join / publish with acks, `message` to the room), so the
// same load generator drives both. Test-only; never shipped.
//   node reference-server.mjs <port>
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
const http = createServer();
const io = new Server(http); // default options: pingInterval 25 s, pingTimeout 20 s, maxHttpBufferSize 1 MB

io.on("connection", (socket) => {
  socket.on("join", (msg, ack) => {
    socket.join(msg.room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("publish", (msg, ack) => {
    io.to(msg.room).emit("message", { room: msg.room, data: msg.data });
    if (typeof ack === "function") ack({ ok: true });
  });
});

http.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ ready: true, pid: process.pid })));
process.on("SIGTERM", () => process.exit(0));
