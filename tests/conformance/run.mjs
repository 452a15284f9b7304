// Routing conformance: the same route files served by real Next.js (`next build && next
// start`) and by the gateway in static mode in front of the echo function must choose the
// same route with the same parameters for the same raw requests, and answer with the same
// status where Next.js answers without reaching a route (308, 400, 404). Deliberate
// differences are rows of differences.mjs, each asserted. DESIGN.md's measured Next.js
// facts (facts.mjs) are checked against the live Next.js on every run. Then the same route
// files are built again with next.config `trailingSlash: true` (trailing-slash/) and compared
// with a gateway whose routes have `spec.trailingSlash` (TRAILING_SLASH_CASES).
//
//   bash tests/conformance/run.sh          (the one command: installs, builds, runs)
//   node run.mjs --next-only               Next.js side only: facts + record next-answers.json
//   env: GATEWAY_BIN, ECHO_BIN (binaries; without them: --next-only), CONFORMANCE_VERBOSE=1,
//        CONFORMANCE_TIMEOUT_SECONDS (default 300), CONFORMANCE_SKIP_NEXT_BUILD=1

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASES, TRAILING_SLASH_CASES } from './cases.mjs';
import { DIFFERENCES } from './differences.mjs';
import { FACTS } from './facts.mjs';
import { staticFile, writePages, GATEWAY_ONLY } from './generate.mjs';
import { rawRequest } from './lib/raw-http.mjs';
import { ROUTES, paramsOf } from './routes.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const nextBin = path.join(here, 'node_modules', 'next', 'dist', 'bin', 'next');
const logDir = path.join(here, 'results');
const verbose = process.env.CONFORMANCE_VERBOSE === '1';
const nextOnly = process.argv.includes('--next-only') || !process.env.GATEWAY_BIN;
const DEADLINE_S = Number(process.env.CONFORMANCE_TIMEOUT_SECONDS || 300);
const started = Date.now();
/** @type {import('node:child_process').ChildProcess[]} */
const children = [];

const deadline = setTimeout(() => {
  console.error(`conformance: gave up after ${DEADLINE_S}s`);
  stopAll().finally(() => process.exit(2));
}, DEADLINE_S * 1000);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => stopAll().finally(() => process.exit(130)));

const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** @param {string} cmd @param {string[]} args @param {Record<string, string>} env @param {string} logName @param {string} [cwd] */
function start(cmd, args, env, logName, cwd = here) {
  const log = fs.openSync(path.join(logDir, `${logName}.log`), 'w');
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  children.push(child);
  child.on('exit', (code, sig) => {
    if (!stopping) console.error(`conformance: ${logName} exited early (${code ?? sig}); see results/${logName}.log`);
  });
  return child;
}

let stopping = false;
async function stopAll() {
  stopping = true;
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

/** Polls until `probe` answers `want`, for at most `seconds`. */
async function waitFor(port, target, seconds, what) {
  const until = Date.now() + seconds * 1000;
  let last = '';
  while (Date.now() < until) {
    try {
      const r = await rawRequest({ port, method: 'GET', target, timeoutMs: 2000 });
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready on :${port}${target} after ${seconds}s (${last})`);
}

/**
 * Builds the Next.js app in `dir` (here, or trailing-slash/) unless the route list and its
 * next.config are unchanged since the last build.
 */
async function buildNext(dir = here) {
  const hash = createHash('sha256')
    .update(fs.readFileSync(path.join(here, 'routes.mjs')))
    .update(fs.readFileSync(path.join(here, 'generate.mjs')))
    .update(fs.readFileSync(path.join(dir, 'next.config.mjs')))
    .digest('hex');
  const stamp = path.join(dir, '.next', 'conformance-routes.sha256');
  writePages(dir);
  if (process.env.CONFORMANCE_SKIP_NEXT_BUILD === '1' || (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash)) {
    console.log(`conformance: reusing .next build (${elapsed()})`);
    return;
  }
  await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [nextBin, 'build'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' } });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(undefined) : reject(new Error(`next build exited ${code}\n${out}`))));
  });
  fs.writeFileSync(stamp, hash);
  console.log(`conformance: next build done in ${path.relative(here, dir) || '.'} (${elapsed()})`);
}

/** What Next.js answered, reduced to what is compared. */
function nextAnswer(c, r) {
  /** @type {any} */
  const a = { status: r.status };
  if (r.headers.location) a.location = r.headers.location;
  if (r.status === 200 && c.method !== 'HEAD') {
    let j;
    try {
      j = JSON.parse(r.body);
    } catch {
      return { ...a, error: `not JSON: ${r.body.slice(0, 80)}` };
    }
    a.route = j.route;
    a.query = j.query;
    a.path = String(j.url).split('?')[0];
    a.method = j.method;
    // Next merges route parameters into req.query (parameters win); read them back by the
    // pattern's names. An optional catch-all that took no segment is absent, and then a
    // query key of the same name shows through req.query: tell the two apart by counting
    // the normalized path's segments against the pattern's.
    const pathSegments = a.path.split('/').filter(Boolean).length;
    const patternSegments = j.route.split('/').filter(Boolean).length;
    a.params = {};
    for (const p of paramsOf(j.route)) {
      if (!(p.name in j.query)) continue;
      if (p.kind === 'optional' && pathSegments < patternSegments) continue;
      a.params[p.name] = j.query[p.name];
    }
  }
  return a;
}

/** What the gateway + echo answered, reduced likewise. */
function gatewayAnswer(c, r) {
  /** @type {any} */
  const a = { status: r.status };
  if (r.headers.location) a.location = r.headers.location;
  let j = null;
  if (c.method !== 'HEAD') {
    try {
      j = JSON.parse(r.body);
    } catch {
      j = null;
    }
  }
  if (r.status === 200 && j && j.apiroute) {
    a.route = j.apiroute['x-apiroute-pattern'];
    // What a handler sees: a name sent as null (an optional catch-all that took no
    // segment) has no value in req.query, as in Next.
    a.params = Object.fromEntries(Object.entries(j.params ?? {}).filter(([, v]) => v !== null));
    a.named = Object.keys(j.params ?? {});
    a.path = j.path;
    a.method = j.method;
  }
  return { a, j };
}

const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);

/** Compares one case; returns null when it conforms, else a reason. */
function compare(c, next, nextRaw, gwRaw) {
  const { a: gw, j } = gatewayAnswer(c, gwRaw);
  const diff = DIFFERENCES.find((d) => d.applies(c, nextRaw));
  if (diff) {
    const why = diff.expect(gwRaw, j, c, nextRaw);
    return why ? `[${diff.id}] ${why}` : null;
  }
  if (gw.status !== next.status) return `status: next ${next.status}, gateway ${gw.status}`;
  if (next.status === 308 && gw.location !== next.location) return `location: next ${next.location}, gateway ${gw.location}`;
  if (next.status === 200 && c.method !== 'HEAD') {
    if (gw.route !== next.route) return `route: next ${next.route}, gateway ${gw.route ?? '(none: ' + gwRaw.body.slice(0, 80) + ')'}`;
    if (!same(sortKeys(gw.params), sortKeys(next.params))) return `params: next ${JSON.stringify(next.params)}, gateway ${JSON.stringify(gw.params)}`;
    const names = paramsOf(next.route).map((p) => p.name).sort();
    if (!same([...gw.named].sort(), names)) return `parameter names in x-apiroute-params: want ${JSON.stringify(names)}, gateway ${JSON.stringify(gw.named)}`;
    if (gw.path !== next.path) return `path seen by the function: next ${next.path}, gateway ${gw.path}`;
    if (gw.method !== next.method) return `method: next ${next.method}, gateway ${gw.method}`;
  }
  return null;
}

function sortKeys(o) {
  return Object.fromEntries(Object.entries(o ?? {}).sort(([a], [b]) => a.localeCompare(b)));
}

/** The comparator must be able to fail: synthetic mismatches of each kind. */
function selfTest() {
  const c = { method: 'GET', target: '/api/users/1', group: 'self-test' };
  const json = (o) => ({ status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(o), raw: '' });
  const n = json({ route: '/api/users/[id]', query: { id: '1' }, url: '/api/users/1', method: 'GET' });
  const g = (over) =>
    json({ method: 'GET', path: '/api/users/1', params: { id: '1' }, apiroute: { 'x-apiroute-pattern': '/api/users/[id]' }, ...over });
  const check = (gw) => compare(c, nextAnswer(c, n), n, gw);
  const problems = [];
  if (check(g({})) !== null) problems.push('an equal answer is reported as a mismatch');
  if (check(g({ apiroute: { 'x-apiroute-pattern': '/api/[section]' } })) === null) problems.push('another route passes');
  if (check(g({ params: { id: '2' } })) === null) problems.push('other params pass');
  if (check(g({ params: { id: ['1'] } })) === null) problems.push('an array for a string passes');
  if (check(g({ path: '/api/users/../users/1' })) === null) problems.push('another forwarded path passes');
  if (check({ status: 404, headers: {}, body: '', raw: '' }) === null) problems.push('another status passes');
  const r308 = { status: 308, headers: { location: '/api/x' }, body: '', raw: '' };
  if (compare(c, nextAnswer(c, r308), r308, { ...r308, headers: { location: '/api/x/' } }) === null) problems.push('another Location passes');
  if (problems.length) throw new Error(`comparator self-test: ${problems.join('; ')}`);
}

/** Checks DESIGN.md's facts against live Next.js; returns failures. */
async function checkFacts(port) {
  const failures = [];
  for (const f of FACTS) {
    const c = { method: f.method ?? 'GET', target: f.target, group: 'fact' };
    const r = await rawRequest({ port, method: c.method, target: c.target });
    const a = nextAnswer(c, r);
    const problems = [];
    if (f.status !== undefined && a.status !== f.status) problems.push(`status ${a.status} (want ${f.status})`);
    if (f.location !== undefined && a.location !== f.location) problems.push(`location ${a.location} (want ${f.location})`);
    if (f.route !== undefined && a.route !== f.route) problems.push(`route ${a.route} (want ${f.route})`);
    if (f.params !== undefined && !same(sortKeys(a.params), sortKeys(f.params))) problems.push(`params ${JSON.stringify(a.params)} (want ${JSON.stringify(f.params)})`);
    if (f.query !== undefined && !same(sortKeys(a.query), sortKeys(f.query))) problems.push(`query ${JSON.stringify(a.query)} (want ${JSON.stringify(f.query)})`);
    if (f.path !== undefined && a.path !== f.path) problems.push(`path ${a.path} (want ${f.path})`);
    const tag = f.design === false ? 'measured' : 'DESIGN.md';
    if (problems.length) failures.push(`fact (${tag}) "${f.fact}": ${c.method} ${c.target}: ${problems.join('; ')}`);
    else if (verbose) console.log(`ok   fact (${tag}) ${f.fact}`);
  }
  return failures;
}

async function main() {
  fs.mkdirSync(logDir, { recursive: true });
  selfTest();
  await buildNext();
  const nextPort = await freePort();
  start(process.execPath, [nextBin, 'start', '-H', '127.0.0.1', '-p', String(nextPort)], { NEXT_TELEMETRY_DISABLED: '1' }, 'next');
  await waitFor(nextPort, '/api/hello', 60, 'next start');
  console.log(`conformance: next start on :${nextPort} (${elapsed()})`);

  const failures = await checkFacts(nextPort);
  console.log(`conformance: ${FACTS.length - failures.length}/${FACTS.length} Next.js facts hold`);

  /** @type {Record<string, any>} */
  const recorded = {};
  /** @type {Map<string, import('./lib/raw-http.mjs').RawResponse>} */
  const nextRaw = new Map();
  for (const c of CASES) {
    const key = `${c.method} ${c.target}`;
    const r = await rawRequest({ port: nextPort, method: c.method, target: c.target });
    nextRaw.set(key, r);
    recorded[key] = nextAnswer(c, r);
  }
  const answersFile = path.join(here, 'next-answers.json');
  if (nextOnly) {
    fs.writeFileSync(answersFile, JSON.stringify({ next: '16.4.6', routes: ROUTES.map((r) => r.pattern), answers: recorded }, null, 1) + '\n');
    console.log(`conformance: recorded ${CASES.length} Next.js answers in next-answers.json`);
  } else if (fs.existsSync(answersFile)) {
    // The committed answers are the facts the gateway was built against: say when Next moved.
    const old = JSON.parse(fs.readFileSync(answersFile, 'utf8')).answers;
    for (const [k, v] of Object.entries(recorded)) {
      if (old[k] && !same(old[k], v)) failures.push(`next drift: ${k}: recorded ${JSON.stringify(old[k])}, now ${JSON.stringify(v)}`);
    }
  }

  let compared = 0;
  let differences = 0;
  if (!nextOnly) {
    const echoPort = await freePort();
    const gwPort = await freePort();
    const adminPort = await freePort();
    const staticPath = path.join(logDir, 'static.yaml');
    fs.writeFileSync(staticPath, staticFile(`http://127.0.0.1:${echoPort}`));
    start(/** @type {string} */ (process.env.ECHO_BIN), [], { HOST: '127.0.0.1', PORT: String(echoPort), ECHO_NAME: 'echo' }, 'echo');
    await waitFor(echoPort, '/healthz', 30, 'echo');
    start(
      /** @type {string} */ (process.env.GATEWAY_BIN),
      ['--static', staticPath, '--listen', `127.0.0.1:${gwPort}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--log-level', 'warn'],
      {},
      'gateway',
    );
    await waitFor(adminPort, '/readyz', 30, 'gateway');
    console.log(`conformance: gateway on :${gwPort}, echo on :${echoPort} (${elapsed()})`);

    const allCases = [...CASES, ...GATEWAY_ONLY.cases];
    for (const c of allCases) {
      const key = `${c.method} ${c.target}`;
      let n = nextRaw.get(key);
      if (!n) n = await rawRequest({ port: nextPort, method: c.method, target: c.target });
      const g = await rawRequest({ port: gwPort, method: c.method, target: c.target });
      const why = compare(c, nextAnswer(c, n), n, g);
      compared++;
      if (DIFFERENCES.some((d) => d.applies(c, n))) differences++;
      if (why) failures.push(`${c.group}: ${key}: ${why}`);
      else if (verbose) console.log(`ok   ${c.group}: ${key}`);
    }

    // next.config `trailingSlash: true` against routes with `spec.trailingSlash`.
    const ts = await trailingSlashPhase(`http://127.0.0.1:${echoPort}`);
    compared += ts.compared;
    differences += ts.differences;
    failures.push(...ts.failures);
  }

  for (const f of failures) console.log(`FAIL ${f}`);
  const total = FACTS.length + (nextOnly ? 0 : compared);
  console.log(
    `\nconformance summary: ${ROUTES.length} route files, ${CASES.length} requests, ${FACTS.length} facts` +
      (nextOnly ? ' (Next.js only: no GATEWAY_BIN)' : `, ${compared} compared with the gateway, ${differences} under deliberate differences`) +
      ` in ${elapsed()}`,
  );
  console.log(`${total - failures.length} passed, ${failures.length} failed`);
  return failures.length === 0;
}

/**
 * The same route files built with next.config `trailingSlash: true` (trailing-slash/), and a
 * second gateway whose routes have `spec.trailingSlash`, on TRAILING_SLASH_CASES.
 * @param {string} echoUrl
 */
async function trailingSlashPhase(echoUrl) {
  const dir = path.join(here, 'trailing-slash');
  await buildNext(dir);
  const nextPort = await freePort();
  const gwPort = await freePort();
  const adminPort = await freePort();
  start(process.execPath, [nextBin, 'start', '-H', '127.0.0.1', '-p', String(nextPort)], { NEXT_TELEMETRY_DISABLED: '1' }, 'next-trailing-slash', dir);
  await waitFor(nextPort, '/api/hello/', 60, 'next start (trailingSlash: true)');
  const staticPath = path.join(logDir, 'static-trailing-slash.yaml');
  fs.writeFileSync(staticPath, staticFile(echoUrl, { trailingSlash: true }));
  start(
    /** @type {string} */ (process.env.GATEWAY_BIN),
    ['--static', staticPath, '--listen', `127.0.0.1:${gwPort}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--log-level', 'warn'],
    {},
    'gateway-trailing-slash',
  );
  await waitFor(adminPort, '/readyz', 30, 'gateway (trailingSlash routes)');
  console.log(`conformance: trailingSlash: true: next start on :${nextPort}, gateway on :${gwPort} (${elapsed()})`);
  const failures = [];
  let differences = 0;
  for (const c of TRAILING_SLASH_CASES) {
    const n = await rawRequest({ port: nextPort, method: c.method, target: c.target });
    const g = await rawRequest({ port: gwPort, method: c.method, target: c.target });
    const why = compare(c, nextAnswer(c, n), n, g);
    if (DIFFERENCES.some((d) => d.applies(c, n))) differences++;
    const key = `${c.method} ${c.target}`;
    if (why) failures.push(`${c.group}: ${key}: ${why}`);
    else if (verbose) console.log(`ok   ${c.group}: ${key}`);
  }
  return { compared: TRAILING_SLASH_CASES.length, differences, failures };
}

main()
  .then(async (ok) => {
    clearTimeout(deadline);
    await stopAll();
    process.exit(ok ? 0 : 1);
  })
  .catch(async (e) => {
    console.error(`conformance: ${e.stack || e}`);
    clearTimeout(deadline);
    await stopAll();
    process.exit(2);
  });
