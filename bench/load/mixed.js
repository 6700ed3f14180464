// MangaHub mixed load (k6): browsing readers with think time, searchers, chat
// sockets and a spike of clients listing the catalog every 100 ms, against one
// server. Driven by bench/load/run_load.py, which seeds the data file (DATA) and
// starts the server (BASE). QUICK=1 shrinks the ~7 min run to ~1 min.
import http from 'k6/http';
import ws from 'k6/ws';
import { check, sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';

const BASE = __ENV.BASE;
const WS_BASE = BASE.replace(/^http/, 'ws');
const QUICK = __ENV.QUICK === '1';
const data = JSON.parse(open(__ENV.DATA));
const ids = new SharedArray('ids', () => data.ids);
const words = new SharedArray('words', () => data.words);
const tokens = new SharedArray('tokens', () => data.tokens);
const rooms = data.rooms;
const genres = data.genres;

// Seconds: the whole run, and when the spike starts and how long it lasts.
const TOTAL = QUICK ? 60 : 420;
const SPIKE_AT = QUICK ? 20 : 180;
const SPIKE_FOR = QUICK ? 20 : 60;
const SORTS = ['popularity', 'rating', 'updated', 'title', 'chapters'];

const chatRoundTrip = new Trend('chat_round_trip', true);
const wsErrors = new Counter('ws_errors');
const pongsAfterClose = new Counter('ws_pongs_after_close');

export const options = {
  discardResponseBodies: true,
  scenarios: {
    readers: { executor: 'constant-vus', exec: 'reader', vus: 100, duration: `${TOTAL}s` },
    searchers: { executor: 'constant-vus', exec: 'searcher', vus: 15, duration: `${TOTAL}s` },
    chat: {
      executor: 'ramping-vus',
      exec: 'chatter',
      startVUs: 25,
      stages: [
        { duration: `${Math.round(TOTAL / 2)}s`, target: 38 },
        { duration: `${TOTAL - Math.round(TOTAL / 2)}s`, target: 25 },
      ],
      gracefulRampDown: '5s',
      gracefulStop: '5s',
    },
    spike: {
      executor: 'constant-vus',
      exec: 'spike',
      vus: 100,
      startTime: `${SPIKE_AT}s`,
      duration: `${SPIKE_FOR}s`,
    },
  },
  thresholds: {
    http_req_duration: ['p(95)<100'],
    // One per request kind, so the summary reports each kind's percentiles.
    'http_req_duration{name:browse}': ['p(95)<100'],
    'http_req_duration{name:series}': ['p(95)<100'],
    'http_req_duration{name:search}': ['p(95)<100'],
    'http_req_duration{name:genres}': ['p(95)<100'],
    'http_req_duration{name:advanced-search}': ['p(95)<100'],
    'http_req_duration{name:spike-list}': ['p(95)<100'],
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    ws_errors: ['count==0'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function think(low, high) {
  sleep(low + Math.random() * (high - low));
}

function get(path, name) {
  const r = http.get(`${BASE}${path}`, { tags: { name } });
  check(r, { [`${name} 200`]: (res) => res.status === 200 });
  return r;
}

function searchPath() {
  const params = [];
  if (Math.random() < 0.6) params.push(`q=${encodeURIComponent(pick(words))}`);
  if (Math.random() < 0.4) params.push(`genres=${encodeURIComponent(pick(genres))}`);
  params.push(`sort_by=${pick(SORTS)}`);
  params.push(`page=${1 + Math.floor(Math.random() * 3)}`);
  return `/api/manga/advanced-search?${params.join('&')}`;
}

// A reader browses a catalog page, opens a few series, now and then searches.
export function reader() {
  get(`/api/manga?page=${1 + Math.floor(Math.random() * 25)}`, 'browse');
  think(1, 3);
  const opened = 1 + Math.floor(Math.random() * 3);
  for (let i = 0; i < opened; i++) {
    get(`/api/manga/${pick(ids)}`, 'series');
    think(1, 3);
  }
  if (Math.random() < 0.3) {
    get(`/api/manga?q=${encodeURIComponent(pick(words))}`, 'search');
    think(1, 2);
  }
  if (Math.random() < 0.1) {
    get('/api/genres', 'genres');
  }
}

export function searcher() {
  get(searchPath(), 'advanced-search');
  think(0.5, 1.5);
}

export function spike() {
  get(`/api/manga?page=${1 + Math.floor(Math.random() * 10)}`, 'spike-list');
  sleep(0.1);
}

// One chat socket per VU for as long as the scenario keeps the VU: joins a room,
// says something every 5-10 s and times each own message's return trip. At the end
// it stops sending, leaves the room and closes.
export function chatter() {
  const token = tokens[(__VU - 1) % tokens.length];
  const room = rooms[(__VU - 1) % rooms.length];
  const sent = {};
  let closing = false; // no more chat messages: leaving
  let closed = false; // the close frame went out (k6 fires 'close' right after sending it)
  const res = ws.connect(`${WS_BASE}/ws?token=${token}`, { tags: { name: 'chat' } }, (socket) => {
    socket.on('open', () => socket.send(JSON.stringify({ type: 'join', room_id: room })));
    socket.on('message', (raw) => {
      const msg = JSON.parse(raw);
      if (msg.type === 'error') {
        wsErrors.add(1, { code: String(msg.code) });
        console.warn(`chat error frame: ${raw}`);
      } else if (msg.type === 'chat' && sent[msg.content] !== undefined) {
        chatRoundTrip.add(Date.now() - sent[msg.content]);
        delete sent[msg.content];
      }
    });
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', (e) => {
      // uvicorn pings every socket every 20 s, and k6 answers each ping with a pong.
      // A ping that arrives after k6 sent this socket's close frame (ours, or k6's own
      // when the scenario ends) makes k6 refuse that pong locally ("websocket: close
      // sent"): nothing failed on the server, so it is counted apart. Every other
      // socket error counts.
      if (closed && e.error() === 'websocket: close sent') {
        pongsAfterClose.add(1);
        return;
      }
      wsErrors.add(1, { code: 'socket' });
      console.warn(`chat socket error: ${e.error()}`);
    });
    socket.setInterval(() => {
      if (closing) return; // a send after close() is a client-side error, not the server's
      const content = `vu ${__VU} says ${Date.now()} ${Math.random()}`;
      sent[content] = Date.now();
      socket.send(JSON.stringify({ type: 'chat', room_id: room, content }));
    }, 5000 + Math.random() * 5000);
    socket.setTimeout(() => {
      closing = true;
      socket.send(JSON.stringify({ type: 'leave', room_id: room }));
      // A moment for the leave to arrive before the close frame.
      socket.setTimeout(() => socket.close(), 200);
    }, (QUICK ? 20 : 60) * 1000);
  });
  check(res, { 'chat upgraded': (r) => r && r.status === 101 });
}
