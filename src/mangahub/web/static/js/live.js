// One WebSocket per page for the user's own events (progress, notifications) and chat.
// It authenticates with its first message, renews before the token expires, and
// reconnects by itself with backoff.

import { liveToken, accessToken } from "./api.js";

const handlers = new Map(); // type -> Set<fn>
const rooms = new Set();
let socket = null;
let backoff = 500;
let stopped = true;
let renewTimer = null;
let retryTimer = null;

export function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(fn);
  return () => handlers.get(type).delete(fn);
}

function emit(type, msg) {
  for (const fn of handlers.get(type) || []) fn(msg);
  for (const fn of handlers.get("*") || []) fn(msg);
}

export function connected() { return socket !== null && socket.readyState === WebSocket.OPEN; }

export function start() {
  if (!stopped) return;
  stopped = false;
  open();
}

export function stop() {
  stopped = true;
  clearTimeout(renewTimer);
  clearTimeout(retryTimer);
  rooms.clear();
  if (socket) socket.close(1000, "signed out");
  socket = null;
}

async function open() {
  if (stopped) return;
  const token = await liveToken();
  if (!token) { stopped = true; return; }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  socket = ws;
  ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", token })));
  ws.addEventListener("message", (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === "auth_ok") {
      backoff = 500;
      scheduleRenew(msg.expires_in);
      for (const room of rooms) ws.send(JSON.stringify({ type: "join", room_id: room }));
      emit("open", msg);
      return;
    }
    if (msg.type === "ping") { ws.send(JSON.stringify({ type: "pong" })); return; }
    emit(msg.type, msg);
  });
  ws.addEventListener("close", () => {
    if (socket === ws) socket = null;
    emit("close", {});
    if (stopped) return;
    retryTimer = setTimeout(open, backoff + Math.random() * 250);
    backoff = Math.min(backoff * 2, 10_000);
  });
}

function scheduleRenew(seconds) {
  clearTimeout(renewTimer);
  if (!seconds) return;
  renewTimer = setTimeout(async () => {
    const token = await liveToken();
    if (connected() && token) socket.send(JSON.stringify({ type: "auth", token }));
  }, Math.max(5, seconds - 45) * 1000);
}

export function send(msg) {
  if (!connected()) return false;
  socket.send(JSON.stringify(msg));
  return true;
}

export function join(room) {
  rooms.add(room);
  send({ type: "join", room_id: room });
}

export function leave(room) {
  if (rooms.delete(room)) send({ type: "leave", room_id: room });
}

export const hasToken = () => Boolean(accessToken());
