'use strict';
// Cluster primary: forks the workers, rolls them one at a time on SIGHUP.
const cluster = require('node:cluster');
const fs = require('node:fs');
const path = require('node:path');

function intEnv(name, dflt) {
  const v = Number.parseInt(process.env[name] || '', 10);
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

const PORT = intEnv('PORT', 14000);
const HOST = process.env.HOST || '0.0.0.0';
const WORKERS = intEnv('WORKERS', 2);
const PID_FILE = process.env.PID_FILE || '';
const LISTEN_TIMEOUT_MS = intEnv('LISTEN_TIMEOUT_MS', 10000);
const STOP_TIMEOUT_MS = intEnv('STOP_TIMEOUT_MS', 10000);
const MAX_RESTARTS = 5; // unplanned restarts allowed per window
const RESTART_WINDOW_MS = 60000;

function log(msg) {
  process.stdout.write(`${new Date().toISOString()} primary[${process.pid}] ${msg}\n`);
}
function logError(msg) {
  process.stderr.write(`${new Date().toISOString()} primary[${process.pid}] ERROR ${msg}\n`);
}

const serving = new Set(); // listening workers that are not being retired
let starting = 0;
let respawnsPending = 0;
let restartTimes = [];
let rolling = false;
let rollQueued = false;
let stopping = false;

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  // A stale pid file may name a pid since reused by an unrelated process.
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node');
  } catch {
    return true;
  }
}

function writePidFile() {
  if (!PID_FILE) return;
  let old = NaN;
  try {
    old = Number.parseInt(fs.readFileSync(PID_FILE, 'utf8'), 10);
  } catch { /* no pid file */ }
  if (Number.isInteger(old) && old !== process.pid && pidAlive(old)) {
    logError(`pid file ${PID_FILE} names running process ${old}; refusing to start`);
    process.exit(1);
  }
  fs.writeFileSync(PID_FILE, `${process.pid}\n`, { mode: 0o644 });
}

function removePidFile() {
  if (!PID_FILE) return;
  try {
    if (Number.parseInt(fs.readFileSync(PID_FILE, 'utf8'), 10) === process.pid) fs.unlinkSync(PID_FILE);
  } catch { /* already gone */ }
}

function pids(workers) {
  return [...workers].map((w) => w.process.pid).join(',') || '-';
}

// Forks a worker; resolves to it once listening, or to null (killed) if it fails to.
function startWorker(why) {
  return new Promise((resolve) => {
    const w = cluster.fork();
    const pid = w.process.pid;
    const t0 = Date.now();
    starting += 1;
    log(`worker ${pid} forked (${why})`);
    let done = false;
    const finish = (ok, reason) => {
      if (done) return;
      done = true;
      starting -= 1;
      clearTimeout(timer);
      w.removeListener('listening', onListening);
      w.removeListener('exit', onExit);
      if (ok && !stopping) {
        serving.add(w);
        log(`worker ${pid} listening after ${Date.now() - t0} ms`);
        resolve(w);
        return;
      }
      if (ok) reason = 'primary is stopping';
      logError(`worker ${pid} failed to start: ${reason}`);
      if (!w.isDead()) w.process.kill('SIGKILL');
      resolve(null);
    };
    const onListening = () => finish(true);
    const onExit = (code, signal) => finish(false, `exited (${signal || code}) before listening`);
    const timer = setTimeout(() => finish(false, `not listening after ${LISTEN_TIMEOUT_MS} ms`), LISTEN_TIMEOUT_MS);
    w.once('listening', onListening);
    w.once('exit', onExit);
  });
}

// Disconnects a worker gracefully; resolves once it has exited (killed after STOP_TIMEOUT_MS).
function retire(w, why) {
  serving.delete(w);
  return new Promise((resolve) => {
    if (w.isDead()) {
      resolve();
      return;
    }
    const pid = w.process.pid;
    const t0 = Date.now();
    const timer = setTimeout(() => {
      logError(`worker ${pid} still running ${STOP_TIMEOUT_MS} ms after disconnect; killing it`);
      w.process.kill('SIGKILL');
    }, STOP_TIMEOUT_MS);
    w.once('exit', (code, signal) => {
      clearTimeout(timer);
      log(`worker ${pid} exited (${signal || code}) ${Date.now() - t0} ms after disconnect`);
      resolve();
    });
    log(`worker ${pid} disconnecting (${why})`);
    if (w.isConnected()) w.disconnect();
    else w.process.kill('SIGTERM');
  });
}

async function rollOnce() {
  const t0 = Date.now();
  const old = [...serving];
  log(`roll started: replacing ${old.length} worker(s) [${pids(old)}]`);
  let replaced = 0;
  for (const w of old) {
    if (stopping) return;
    if (!serving.has(w)) continue; // died meanwhile; replaced below
    const nw = await startWorker(`roll: replaces ${w.process.pid}`);
    if (!nw) {
      logError(`roll aborted after ${replaced}/${old.length} replaced; old workers keep serving`);
      return;
    }
    await retire(w, `roll: replaced by ${nw.process.pid}`);
    replaced += 1;
  }
  while (!stopping && serving.size + starting < WORKERS) {
    if (!(await startWorker('roll: top-up'))) {
      logError(`roll aborted while topping up to ${WORKERS} workers`);
      return;
    }
  }
  if (stopping) return;
  restartTimes = []; // new code on disk earns a fresh restart budget
  log(`roll finished: ${replaced} worker(s) replaced in ${Date.now() - t0} ms; serving [${pids(serving)}]`);
}

async function roll() {
  if (stopping) return;
  if (rolling) {
    log(rollQueued ? 'SIGHUP during roll: a roll is already queued' : 'SIGHUP during roll: queued one more roll');
    rollQueued = true;
    return;
  }
  rolling = true;
  try {
    do {
      rollQueued = false;
      await rollOnce();
    } while (rollQueued && !stopping);
  } catch (e) {
    logError(`roll failed: ${e && e.stack}`);
  } finally {
    rolling = false;
  }
}

function scheduleRespawn(why) {
  const now = Date.now();
  restartTimes = restartTimes.filter((t) => now - t < RESTART_WINDOW_MS);
  if (restartTimes.length >= MAX_RESTARTS) {
    logError(`${why}; ${MAX_RESTARTS} restarts in ${RESTART_WINDOW_MS} ms, not respawning`);
    giveUpIfEmpty();
    return;
  }
  const delay = Math.min(100 * 2 ** restartTimes.length, 5000);
  restartTimes.push(now);
  respawnsPending += 1;
  logError(`${why}; respawning in ${delay} ms`);
  setTimeout(async () => {
    respawnsPending -= 1;
    if (stopping || serving.size + starting >= WORKERS) return;
    if (!(await startWorker('respawn'))) scheduleRespawn('respawn failed');
  }, delay);
}

function giveUpIfEmpty() {
  if (serving.size === 0 && starting === 0 && respawnsPending === 0 && !rolling) {
    logError('no workers left and restart budget exhausted; exiting');
    removePidFile();
    process.exit(1);
  }
}

cluster.on('exit', (w, code, signal) => {
  if (!serving.has(w)) return; // planned, or a start failure handled by startWorker
  serving.delete(w);
  if (!stopping) scheduleRespawn(`worker ${w.process.pid} died unexpectedly (${signal || code})`);
});

async function shutdown(sig) {
  if (stopping) return;
  stopping = true;
  const t0 = Date.now();
  log(`${sig}: stopping workers [${pids(serving)}]`);
  const all = Object.values(cluster.workers).filter((w) => !w.isDead());
  await Promise.all(all.map((w) => retire(w, sig)));
  removePidFile();
  log(`stopped in ${Date.now() - t0} ms`);
  process.exit(0);
}

cluster.setupPrimary({ exec: path.join(__dirname, 'worker.js') });
writePidFile();
process.on('exit', removePidFile);
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => {
  log('SIGHUP: rolling restart requested');
  roll();
});

log(`starting ${WORKERS} worker(s) on ${HOST}:${PORT}`);
(async () => {
  const started = await Promise.all(Array.from({ length: WORKERS }, () => startWorker('initial')));
  for (const w of started) if (!w && !stopping) scheduleRespawn('initial worker failed');
})();
