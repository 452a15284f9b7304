// Conformance: the same handler files served by `next build && next start` and by the
// apiroutes Node runtime (one process per route file, behind the real gateway in static mode,
// `apiroutes-gateway --static FILE`) must answer the same. Prints a summary; exits 1 on any
// mismatch that is not a listed difference.
//
//   npm run conformance            (from runtime/node: npm ci here, then this script)
//   GATEWAY_BIN=path               use this apiroutes-gateway binary; without it the script runs
//                                  `cargo build -p apiroutes-gateway` (a no-op when up to date) with
//                                  CARGO_TARGET_DIR (default ${APIROUTES_CACHE:-~/.cache/apiroutes}/target)
//   CONFORMANCE_SKIP_NEXT_BUILD=1  reuse an existing .next build
//   CONFORMANCE_FILTER=text        only cases whose name contains text
//   CONFORMANCE_VERBOSE=1          print every case
//   CONFORMANCE_SHOW=n             print up to n characters of a differing body (default 300)
//
// Both sides get the same environment; the runtime processes also get APIROUTES_APP_DIR
// (this folder, for its .env files). Files marked `conformance: served unbuilt` are served
// by the runtime from their source instead of from `apiroutes-node build`'s output.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from '../src/build.js';
import { cases } from './cases.mjs';
import { DIFFERENCES } from './differences.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.join(here, '..', '..', '..');
const runtimeBin = path.join(here, '..', 'bin', 'apiroutes-node.js');
const nextBin = path.join(here, 'node_modules', 'next', 'dist', 'bin', 'next');
const outDir = path.join(here, '.apiroutes');
const DEADLINE_S = Number(process.env.CONFORMANCE_TIMEOUT_SECONDS || 300);
const started = Date.now();
/** @type {import('node:child_process').ChildProcess[]} */
const children = [];
/** @type {import('node:child_process').ChildProcess[]} */
const servers = [];

const deadline = setTimeout(() => {
  console.error(`conformance: gave up after ${DEADLINE_S}s`);
  stopAll().finally(() => process.exit(2));
}, DEADLINE_S * 1000);

function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}

/**
 * `n` distinct free ports: all probe sockets stay open until every port is known.
 * @param {number} n
 * @returns {Promise<number[]>}
 */
async function freePorts(n) {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    })),
  );
  const ports = servers.map((srv) => /** @type {net.AddressInfo} */ (srv.address()).port);
  await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(() => resolve(undefined)))));
  return ports;
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}\n${out}`))));
  });
}

function startProcess(args, env, logName, cmd = process.execPath) {
  const log = fs.openSync(path.join(outDir, `${logName}.log`), 'w');
  const child = spawn(cmd, args, { cwd: here, env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  children.push(child);
  servers.push(child);
  return child;
}

async function stopAll() {
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve(undefined);
          const t = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve(undefined);
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}

async function waitReady(port, pathname, child, what) {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      const r = await request(port, { method: 'GET', path: pathname });
      if (r.status < 500) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready on :${port}`);
}

/**
 * One HTTP exchange; resolves with status, status text, raw header pairs and body, and the
 * informational (1xx) heads that came before. A 1xx head followed by the end of the
 * connection (no final response) resolves as that head with `final: false`.
 * @returns {Promise<{status:number, statusText:string, headers:[string,string][], body:Buffer, informational: string[], final: boolean}>}
 */
function request(port, c) {
  return new Promise((resolve, reject) => {
    const headers = { ...(c.headers || {}) };
    const body = c.body === undefined ? undefined : Buffer.isBuffer(c.body) ? c.body : Buffer.from(c.body);
    if (body !== undefined && !c.chunked) headers['content-length'] = String(body.length);
    /** @type {import('node:http').InformationEvent[]} */
    const infos = [];
    let responded = false;
    const pairsOf = (raw) => {
      const pairs = [];
      for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i].toLowerCase(), raw[i + 1]]);
      return pairs;
    };
    const describeInfo = (i) =>
      `${i.statusCode} ${i.statusMessage} ${JSON.stringify(pairsOf(i.rawHeaders).filter(([n]) => !TRANSPORT_HEADERS.has(n)))}`;
    const req = http.request({ host: '127.0.0.1', port, method: c.method || 'GET', path: c.path, headers, agent: false }, (res) => {
      responded = true;
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        resolve({
          status: res.statusCode || 0,
          statusText: res.statusMessage || '',
          headers: pairsOf(res.rawHeaders),
          body: Buffer.concat(chunks),
          informational: infos.map(describeInfo),
          final: true,
        });
      });
      res.on('error', reject);
    });
    req.on('information', (info) => infos.push(info));
    req.on('close', () => {
      if (responded) return;
      // A reset swallowed below, with no head at all: say so rather than wait forever.
      if (infos.length === 0) return reject(new Error('connection closed without a response'));
      const last = /** @type {import('node:http').InformationEvent} */ (infos.at(-1));
      resolve({
        status: last.statusCode,
        statusText: last.statusMessage,
        headers: pairsOf(last.rawHeaders),
        body: Buffer.alloc(0),
        informational: infos.slice(0, -1).map(describeInfo),
        final: false,
      });
    });
    req.setTimeout(15000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      // A server may answer 413 and close before the whole upload went out; a 1xx head
      // without a final response ends in a reset (resolved on 'close' above).
      if (/** @type {any} */ (err).code === 'EPIPE' || /** @type {any} */ (err).code === 'ECONNRESET') return;
      reject(err);
    });
    if (body !== undefined) {
      if (c.chunked) {
        req.write(body.subarray(0, 3));
        setTimeout(() => req.end(body.subarray(3)), 20);
      } else req.end(body);
    } else req.end();
  });
}

// Headers whose value is the transport's business, not the handler's.
const TRANSPORT_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);
const PREVIEW_VALUE = /(__prerender_bypass|__next_preview_data)(=|":")[^;",\s]*/g;

/** Normalizes one side's answer into the comparable parts. */
function normalize(r) {
  /** @type {Record<string, string[]>} */
  const headers = {};
  for (const [name, value] of r.headers) {
    if (TRANSPORT_HEADERS.has(name)) continue;
    (headers[name] ??= []).push(name === 'set-cookie' ? value.replace(PREVIEW_VALUE, '$1$2<value>') : value);
  }
  // Informational heads before the answer, and whether a final answer came at all, are
  // compared as two pseudo-headers.
  if (r.informational.length) headers[':informational'] = r.informational;
  if (!r.final) headers[':final-response'] = ['none'];
  let body = r.body.toString('latin1');
  body = body.replace(PREVIEW_VALUE, '$1$2<value>');
  return { status: r.status, statusText: r.statusText, headers, body };
}

/** The cookies an answer set (name=value pairs), or only the one named `only`. */
function cookiesOf(r, only) {
  return r.headers
    .filter(([n]) => n === 'set-cookie')
    .map(([, v]) => v.split(';')[0])
    .filter((pair) => !/=$/.test(pair))
    .filter((pair) => only === undefined || pair.startsWith(`${only}=`))
    .join('; ');
}

/** The source file of a built route file (`.apiroutes/pages/api/x.mjs` → `pages/api/x.js`). */
function sourceOf(rel) {
  const stem = path.join(here, rel.replace(/\.mjs$/, ''));
  const source = ['.js', '.ts', '.mjs', '.jsx', '.tsx'].map((ext) => stem + ext).find((f) => fs.existsSync(f));
  if (!source) throw new Error(`no source file for ${rel}`);
  return source;
}

/** Files marked `conformance: served unbuilt` run from their source, not from the build. */
function servedUnbuilt(source) {
  return fs.readFileSync(source, 'utf8').includes('conformance: served unbuilt');
}

function short(s, n = Number(process.env.CONFORMANCE_SHOW || 300)) {
  return s.length > n ? `${s.slice(0, n)}… (${s.length} bytes, sha256 ${createHash('sha256').update(s).digest('hex').slice(0, 12)})` : s;
}

/** Differences between the two normalized answers, as readable lines. */
function compare(a, b) {
  const out = [];
  if (a.status !== b.status) out.push(`status: next ${a.status} vs runtime ${b.status}`);
  if (a.statusText !== b.statusText) out.push(`status text: next ${JSON.stringify(a.statusText)} vs runtime ${JSON.stringify(b.statusText)}`);
  for (const name of new Set([...Object.keys(a.headers), ...Object.keys(b.headers)])) {
    const x = JSON.stringify(a.headers[name] ?? null);
    const y = JSON.stringify(b.headers[name] ?? null);
    if (x !== y) out.push(`header ${name}: next ${x} vs runtime ${y}`);
  }
  // Whole bodies, so that DIFFERENCES can parse them; `display` shortens them for printing.
  if (a.body !== b.body) out.push(`body:\n      next    ${a.body}\n      runtime ${b.body}`);
  return out;
}

/** A difference line for printing: long bodies shortened (CONFORMANCE_SHOW). */
function display(line) {
  const m = /^body:\n {6}next {4}([\s\S]*)\n {6}runtime ([\s\S]*)$/.exec(line);
  return m ? `body:\n      next    ${short(m[1])}\n      runtime ${short(m[2])}` : line;
}

/** The gateway binary: GATEWAY_BIN, else `cargo build -p apiroutes-gateway` (cached target dir). */
async function gatewayBin() {
  if (process.env.GATEWAY_BIN) return process.env.GATEWAY_BIN;
  const cache = process.env.APIROUTES_CACHE || path.join(process.env.HOME || '/root', '.cache', 'apiroutes');
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(cache, 'target');
  await run('cargo', ['build', '--quiet', '-p', 'apiroutes-gateway'], { cwd: repoRoot, env: { ...process.env, CARGO_TARGET_DIR: targetDir } });
  return path.join(targetDir, 'debug', 'apiroutes-gateway');
}

/**
 * `spec.bodyLimit` as `apiroutes import` writes it (cli/src/import): Next's default 1mb for
 * pages, the file's literal `bodyParser.sizeLimit` when set, and the importer's uncapped
 * default (100Mi) for `bodyParser: false` pages and App Router handlers.
 * @param {string} rel  built file relative to .apiroutes, e.g. pages/api/small.mjs
 */
function bodyLimitOf(rel) {
  if (rel.startsWith('app/')) return '100Mi';
  const text = fs.readFileSync(sourceOf(rel), 'utf8');
  if (/bodyParser\s*:\s*false/.test(text)) return '100Mi';
  const m = /sizeLimit\s*:\s*(?:(\d+)\b|['"](\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?['"])/i.exec(text);
  if (!m) return '1Mi';
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[3] || 'b').toLowerCase()] ?? 1;
  const bytes = m[1] !== undefined ? Number(m[1]) : Math.floor(Number(m[2]) * unit);
  for (const [suffix, u] of [['Gi', 1024 ** 3], ['Mi', 1024 ** 2], ['Ki', 1024]]) if (bytes >= u && bytes % u === 0) return `${bytes / u}${suffix}`;
  return String(bytes);
}

/**
 * The gateway's static file: one ApiRoute per handler file, its `spec.path` the file's route
 * pattern and `spec.bodyLimit` what the importer would give it, its backend that file's
 * runtime process.
 * @param {{pattern:string, port:number, bodyLimit:string}[]} routes
 */
function staticFile(routes) {
  const lines = ['# Generated by runtime/node/conformance/run.mjs: one ApiRoute per handler file.', 'routes:'];
  routes.forEach(({ pattern, port, bodyLimit }, i) => {
    const name = `r${i}-${pattern.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}`.slice(0, 63).replace(/-$/, '');
    lines.push(
      '  - route:',
      `      metadata: { name: ${name}, namespace: conformance, creationTimestamp: "2026-01-01T00:00:00Z" }`,
      `      spec: { path: ${JSON.stringify(pattern)}, bodyLimit: ${JSON.stringify(bodyLimit)}, image: unused }`,
      `    backends: [${JSON.stringify(`http://127.0.0.1:${port}`)}]`,
    );
  });
  return lines.join('\n') + '\n';
}

/** Whether a difference line is one we deliberately keep (DIFFERENCES), and which. */
function excused(caseName, line) {
  return DIFFERENCES.find((d) => d.applies(caseName, line));
}

async function main() {
  try {
    await import('esbuild');
  } catch {
    throw new Error('esbuild is missing: run `npm ci` in runtime/node first');
  }
  fs.mkdirSync(outDir, { recursive: true });
  // The same environment for both sides; CONF_PROCESS_WINS is also set in conformance/.env,
  // where the process environment must win.
  const env = { NEXT_TELEMETRY_DISABLED: '1', CONF_PROCESS_WINS: 'from the process environment' };
  if (!process.env.CONFORMANCE_SKIP_NEXT_BUILD || !fs.existsSync(path.join(here, '.next', 'BUILD_ID'))) {
    console.log(`[${elapsed()}] next build …`);
    await run(process.execPath, [nextBin, 'build'], { cwd: here, env: { ...process.env, ...env } });
  }
  console.log(`[${elapsed()}] apiroutes-node build …`);
  fs.rmSync(path.join(outDir, 'pages'), { recursive: true, force: true });
  fs.rmSync(path.join(outDir, 'app'), { recursive: true, force: true });
  const built = [
    ...(await build(path.join(here, 'pages'), path.join(outDir, 'pages'))),
    ...(await build(path.join(here, 'app'), path.join(outDir, 'app'))),
  ];

  const gateway = await gatewayBin();
  if (!fs.existsSync(gateway)) throw new Error(`no gateway binary at ${gateway}`);

  console.log(`[${elapsed()}] starting next start, ${built.length} runtime processes and the gateway …`);
  const ports = await freePorts(built.length + 3);
  const gatewayPort = /** @type {number} */ (ports.pop());
  const adminPort = /** @type {number} */ (ports.pop());
  const nextPort = /** @type {number} */ (ports.pop());
  const next = startProcess([nextBin, 'start', '-H', '127.0.0.1', '-p', String(nextPort)], env, 'next');
  /** @type {{pattern:string, port:number, bodyLimit:string}[]} */
  const routes = [];
  const waits = [waitReady(nextPort, '/api/echo', next, 'next start')];
  for (const file of built) {
    const rel = path.relative(outDir, file).split(path.sep).join('/');
    const pattern = rel.startsWith('app/')
      ? '/' + rel.slice('app/'.length).replace(/\/route\.mjs$/, '')
      : '/' + rel.slice('pages/'.length).replace(/\.mjs$/, '').replace(/\/index$/, '');
    const port = /** @type {number} */ (ports.pop());
    routes.push({ pattern, port, bodyLimit: bodyLimitOf(rel) });
    const source = sourceOf(rel);
    const served = servedUnbuilt(source) ? source : file;
    const child = startProcess(
      [runtimeBin, served],
      // APIROUTES_APP_DIR: the app's .env files, loaded as next start loads them.
      { ...env, HOST: '127.0.0.1', PORT: String(port), APIROUTES_TIMEOUT_SECONDS: '10', APIROUTES_APP_DIR: here },
      `runtime-${pattern.replace(/[^a-z0-9]+/gi, '_')}`,
    );
    waits.push(waitReady(port, '/healthz', child, `runtime for ${pattern}`));
  }
  await Promise.all(waits);
  // A process that lost its port to another one would have exited by now.
  await new Promise((r) => setTimeout(r, 200));
  const dead = servers.filter((c) => c.exitCode !== null);
  if (dead.length) throw new Error(`${dead.length} server process(es) exited at start; see ${outDir}/*.log`);
  const staticPath = path.join(outDir, 'static.yaml');
  fs.writeFileSync(staticPath, staticFile(routes));
  // The gateway alone signs preview cookies, with the first key of its keys file (one per
  // line, >= 16 bytes); a fresh random key per run does for a test. No enable token: the
  // cases start Preview Mode from handlers only.
  const keysPath = path.join(outDir, 'preview-keys');
  fs.writeFileSync(keysPath, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const gw = startProcess(
    [
      '--static', staticPath,
      '--listen', `127.0.0.1:${gatewayPort}`,
      '--admin-listen', `127.0.0.1:${adminPort}`,
      '--log-level', 'warn',
      '--preview-keys-file', keysPath,
      // Read once: the file does not change during a run.
      '--preview-reload-interval', '0',
    ],
    {},
    'gateway',
    gateway,
  );
  await waitReady(adminPort, '/readyz', gw, 'apiroutes-gateway');
  console.log(`[${elapsed()}] next on :${nextPort}, apiroutes-gateway --static on :${gatewayPort}; sending ${cases.length} requests to each`);

  const filter = process.env.CONFORMANCE_FILTER;
  const results = { next: new Map(), runtime: new Map() };
  let passed = 0;
  let differing = 0;
  let failed = 0;
  /** @type {Map<object, number>} */
  const used = new Map();
  for (const c of cases) {
    const needed = (/** @type {any} */ o) => o.name.includes(filter) && (o.cookiesFrom === c.name || o.etagFrom === c.name);
    if (filter && !c.name.includes(filter) && !cases.some(needed)) continue;
    const answers = {};
    for (const [side, port] of [['next', nextPort], ['runtime', gatewayPort]]) {
      const headers = { ...(c.headers || {}) };
      if (c.cookiesFrom) headers.cookie = cookiesOf(results[side].get(c.cookiesFrom), c.onlyCookie);
      if (c.etagFrom) {
        const etag = results[side].get(c.etagFrom).headers.find(([n]) => n === 'etag')?.[1] ?? '';
        headers['if-none-match'] = c.weak ? `W/${etag}` : etag;
      }
      const r = await request(port, { ...c, headers }).catch((err) => {
        throw new Error(`${c.name}: ${side}: ${err.message}`);
      });
      results[side].set(c.name, r);
      answers[side] = normalize(r);
    }
    const lines = compare(answers.next, answers.runtime);
    const unexplained = [];
    for (const line of lines) {
      const d = excused(c.name, line);
      if (d) used.set(d, (used.get(d) ?? 0) + 1);
      else unexplained.push(line);
    }
    if (unexplained.length) {
      failed++;
      console.log(`MISMATCH ${c.name}\n    ${unexplained.map(display).join('\n    ')}`);
    } else if (lines.length) {
      differing++;
      if (process.env.CONFORMANCE_VERBOSE) console.log(`listed   ${c.name}`);
    } else {
      passed++;
      if (process.env.CONFORMANCE_VERBOSE) console.log(`same     ${c.name}`);
    }
    if (process.env.CONFORMANCE_VERBOSE) {
      const r = answers.runtime;
      console.log(`         ${r.status} ${short(r.body, 160)}`);
    }
  }
  await stopAll();
  console.log('\nDeliberate differences seen in this run (see conformance/differences.mjs):');
  for (const d of DIFFERENCES) console.log(`  [${String(used.get(d) ?? 0).padStart(3)} lines] ${d.what}\n      why: ${d.why}`);
  const total = passed + differing + failed;
  console.log(`\nconformance: ${total} requests per side in ${elapsed()}; ${passed} identical, ${differing} differing only as listed, ${failed} mismatched`);
  console.log(`${passed + differing} passed, ${failed} failed`);
  clearTimeout(deadline);
  process.exit(failed ? 1 : 0);
}

// Whatever happens (a crash included), leave no server behind.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
process.on('uncaughtException', (err) => {
  console.error(err);
  process.exit(2);
});

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(2);
});
