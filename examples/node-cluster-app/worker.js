'use strict';
// One HTTP worker of the cluster started by server.js.
const http = require('node:http');
const { execFileSync } = require('node:child_process');

const PORT = Number.parseInt(process.env.PORT || '14000', 10);
const HOST = process.env.HOST || '0.0.0.0';
const MAX_SLEEP_MS = 10000;
// Bounds a drain that would otherwise wait on a client that never finishes.
const DRAIN_TIMEOUT_MS = 9000;
// While draining, a keep-alive connection idle this long is closed; a busier one
// is closed by answering its next request with "Connection: close".
const DRAIN_IDLE_MS = 1000;

function gitHead() {
  // A GIT_DIR or GIT_WORK_TREE inherited from a hook would point git elsewhere.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GIT_')) env[k] = v;
  const out = execFileSync('/usr/bin/git', ['rev-parse', '--verify', 'HEAD'], {
    cwd: __dirname, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000,
  }).trim();
  if (!/^[0-9a-f]{40}$/.test(out)) throw new Error(`unexpected git rev-parse output: ${out}`);
  return out;
}

const VERSION = process.env.APP_VERSION || gitHead();
let draining = false;

function send(res, status, body) {
  // Tells keep-alive clients to reconnect rather than racing our close.
  if (draining) res.setHeader('Connection', 'close');
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const sock = req.socket;
  sock.busy = (sock.busy || 0) + 1;
  res.on('close', () => {
    sock.busy -= 1;
    sock.idleSince = Date.now();
  });
  res.setHeader('X-Worker-Pid', String(process.pid));
  res.setHeader('X-Version', VERSION);
  req.resume();
  const url = new URL(req.url, 'http://localhost');
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 404, 'not found\n');
  switch (url.pathname) {
    case '/health':
      return send(res, 200, 'ok\n');
    case '/version':
      return send(res, 200, `${VERSION}\n`);
    case '/sleep': {
      const ms = Number.parseInt(url.searchParams.get('ms') || '0', 10);
      if (!Number.isFinite(ms) || ms < 0) return send(res, 400, 'bad ms\n');
      setTimeout(() => send(res, 200, `slept ${Math.min(ms, MAX_SLEEP_MS)}\n`), Math.min(ms, MAX_SLEEP_MS));
      return undefined;
    }
    default:
      return send(res, 404, 'not found\n');
  }
});
server.keepAliveTimeout = 5000;
server.headersTimeout = 10000;

const sockets = new Set();
server.on('connection', (sock) => {
  sock.idleSince = Date.now();
  sockets.add(sock);
  sock.on('close', () => sockets.delete(sock));
});

// Node's closeIdleConnections() destroys a keep-alive connection whose next
// request may already be on the wire, and the client sees a reset. Instead close
// only connections that have been idle for a while; busier ones are told to close.
server.closeIdleConnections = function closeLongIdleConnections() {
  const now = Date.now();
  for (const sock of sockets) {
    if (!sock.busy && now - sock.idleSince >= DRAIN_IDLE_MS) sock.destroy();
  }
};

function startDrain(why) {
  if (draining) return;
  draining = true;
  process.stdout.write(`${new Date().toISOString()} worker[${process.pid}] draining (${why})\n`);
  setInterval(() => server.closeIdleConnections(), 100).unref();
  setTimeout(() => {
    process.stderr.write(`${new Date().toISOString()} worker[${process.pid}] drain timed out; exiting\n`);
    process.exit(1);
  }, DRAIN_TIMEOUT_MS).unref();
}

// On worker.disconnect() the cluster module calls server.close() itself; hook it
// to learn that draining has begun (the 'disconnect' event only comes after).
const close = server.close;
server.close = function closeAndDrain(...args) {
  startDrain('closing');
  return close.apply(this, args);
};

function stop(why) {
  startDrain(why);
  server.close();
  server.closeIdleConnections();
}

// Exit once drained; the IPC channel may otherwise keep the process alive.
server.on('close', () => setImmediate(() => process.exit(0)));
process.on('disconnect', () => stop('disconnected from primary'));
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
// The primary handles SIGHUP; a hangup sent to the whole process group must not kill workers.
process.on('SIGHUP', () => {});

server.listen(PORT, HOST);
