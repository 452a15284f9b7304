// Requests/s and p99 of the JSON hello handler under the runtime and under `next start`,
// same machine, one run each; and the runtime's cold start (process start → /healthz 200).
// Prints figures only: nothing here is a pass/fail test.

import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const conformance = path.join(root, 'conformance');
const handler = path.join(conformance, '.apiroutes', 'pages', 'api', 'hello.mjs');
const nextBin = path.join(conformance, 'node_modules', 'next', 'dist', 'bin', 'next');
const bin = path.join(root, 'bin', 'apiroutes-node.js');
const DURATION = Number(process.env.BENCH_SECONDS || 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 50);
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS || 5);
/** @type {import('node:child_process').ChildProcess[]} */
const children = [];

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

function get(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
  });
}

function start(args, env) {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
  children.push(child);
  return child;
}

async function untilOk(port, p, limitMs) {
  const t0 = process.hrtime.bigint();
  for (;;) {
    if ((await get(port, p)) === 200) return Number(process.hrtime.bigint() - t0) / 1e6;
    if (Number(process.hrtime.bigint() - t0) / 1e6 > limitMs) throw new Error(`not ready on :${port}${p}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(undefined);
    child.once('exit', () => resolve(undefined));
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

async function load(port, label) {
  await new Promise((resolve, reject) =>
    autocannon({ url: `http://127.0.0.1:${port}/api/hello`, connections: CONNECTIONS, duration: 2 }, (e, r) => (e ? reject(e) : resolve(r))),
  );
  const result = await new Promise((resolve, reject) =>
    autocannon({ url: `http://127.0.0.1:${port}/api/hello`, connections: CONNECTIONS, duration: DURATION }, (e, r) => (e ? reject(e) : resolve(r))),
  );
  const r = /** @type {any} */ (result);
  return { label, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

async function main() {
  if (!fs.existsSync(handler) || !fs.existsSync(path.join(conformance, '.next', 'BUILD_ID'))) {
    throw new Error('run `npm run conformance` first (it installs next, builds the tree and the runtime bundles)');
  }
  const cold = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    const port = await freePort();
    const t0 = process.hrtime.bigint();
    const child = start([bin, handler], { HOST: '127.0.0.1', PORT: String(port) });
    await untilOk(port, '/healthz', 10_000);
    cold.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await stop(child);
  }
  const rows = [];
  {
    const port = await freePort();
    const child = start([bin, handler], { HOST: '127.0.0.1', PORT: String(port) });
    await untilOk(port, '/healthz', 10_000);
    rows.push(await load(port, 'apiroutes-node'));
    await stop(child);
  }
  let nextCold = 0;
  {
    const port = await freePort();
    const t0 = process.hrtime.bigint();
    const child = start([nextBin, 'start', conformance, '-H', '127.0.0.1', '-p', String(port)], { NEXT_TELEMETRY_DISABLED: '1' });
    await untilOk(port, '/api/hello', 60_000);
    nextCold = Number(process.hrtime.bigint() - t0) / 1e6;
    rows.push(await load(port, 'next start'));
    await stop(child);
  }
  cold.sort((a, b) => a - b);
  console.log(`JSON hello handler, ${CONNECTIONS} connections, ${DURATION}s after a 2s warm-up, one run each, 127.0.0.1`);
  console.log('server           requests/s   p50 ms   p99 ms   errors');
  for (const r of rows) {
    console.log(`${r.label.padEnd(16)} ${r.rps.toFixed(0).padStart(10)} ${String(r.p50).padStart(8)} ${String(r.p99).padStart(8)} ${String(r.errors).padStart(8)}`);
  }
  console.log(
    `cold start, process start → GET /healthz 200: median ${cold[Math.floor(cold.length / 2)].toFixed(0)} ms (min ${cold[0].toFixed(0)}, max ${cold[cold.length - 1].toFixed(0)}, ${cold.length} starts)`,
  );
  console.log(`for comparison, next start → first 200 from /api/hello: ${nextCold.toFixed(0)} ms (one start)`);
}

const guard = setTimeout(() => {
  console.error('bench: gave up after 180s');
  Promise.all(children.map(stop)).finally(() => process.exit(2));
}, 180_000);

// Whatever happens (a crash included), leave no server behind.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
process.on('uncaughtException', (err) => {
  console.error(err);
  process.exit(2);
});

main()
  .catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await Promise.all(children.map(stop));
    clearTimeout(guard);
  });
