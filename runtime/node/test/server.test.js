import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadHandler } from '../src/load.js';
import { installNextServerResolution } from '../src/resolve.js';
import { freePort, listen, request } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const bin = path.join(fixtures, '..', '..', 'bin', 'apiroutes-node.js');
installNextServerResolution();

test('pages handler (ESM): query merged with params, readiness never calls the handler', async () => {
  const srv = await listen(await loadHandler(path.join(fixtures, 'hello.mjs')));
  try {
    const r = await request(srv.port, {
      path: '/api/users/5?id=6&x=1',
      headers: { 'x-apiroute-params': '{"id":"5"}', 'x-apiroute-pattern': '/api/users/[id]' },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { hello: 'world', query: { id: '5', x: '1' }, url: '/api/users/5?x=1' });
    const ready = await request(srv.port, { path: '/healthz' });
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ok\n');
  } finally {
    await srv.close();
  }
});

test('next.config basePath: handlers see the URL without it, as under next start', async () => {
  const { stripBasePath } = await import('../src/server.js');
  assert.equal(stripBasePath('/docs/api/x?a=1', '/docs'), '/api/x?a=1');
  assert.equal(stripBasePath('/docs', '/docs'), '/');
  assert.equal(stripBasePath('/docs?a=1', '/docs'), '/?a=1');
  assert.equal(stripBasePath('/docsx/api', '/docs'), '/docsx/api');
  assert.equal(stripBasePath('/api/x', ''), '/api/x');
  const srv = await listen(await loadHandler(path.join(fixtures, 'hello.mjs')), { basePath: '/docs' });
  try {
    const r = await request(srv.port, {
      path: '/docs/api/users/5?x=1',
      headers: { 'x-apiroute-params': '{"id":"5"}', 'x-apiroute-pattern': '/docs/api/users/[id]' },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { hello: 'world', query: { id: '5', x: '1' }, url: '/api/users/5?x=1' });
  } finally {
    await srv.close();
  }
});

test('custom readiness path', async () => {
  const srv = await listen(await loadHandler(path.join(fixtures, 'hello.mjs')), { readinessPath: '/ready' });
  try {
    assert.equal((await request(srv.port, { path: '/ready' })).body, 'ok\n');
    assert.equal(JSON.parse((await request(srv.port, { path: '/healthz' })).body).hello, 'world');
  } finally {
    await srv.close();
  }
});

test('CommonJS handler with per-file size limit → 413 with Next message', async () => {
  const srv = await listen(await loadHandler(path.join(fixtures, 'legacy.cjs')));
  try {
    const ok = await request(srv.port, { method: 'POST', body: '0123456789' });
    assert.deepEqual(JSON.parse(ok.body), { body: '0123456789' });
    const big = await request(srv.port, { method: 'POST', body: '0123456789!' });
    assert.equal(big.status, 413);
    assert.equal(big.statusText, 'Body exceeded 10b limit');
    assert.equal(big.body, 'Body exceeded 10b limit');
  } finally {
    await srv.close();
  }
});

test('a handler that never answers: logged, then 504 after its maxDuration', async () => {
  /** @type {string[]} */
  const lines = [];
  const srv = await listen(await loadHandler(path.join(fixtures, 'never.mjs')), { log: (l) => lines.push(l) });
  try {
    const r = await request(srv.port, { path: '/api/never' });
    assert.equal(r.status, 504);
    assert.deepEqual(JSON.parse(r.body), { error: 'handler timed out', timeoutSeconds: 0.3 });
    assert.match(lines.join('\n'), /handler did not answer GET \/api\/never within 0.3s .*answering 504/);
  } finally {
    await srv.close();
  }
});

test('app route: params promise, next/server stand-in, 405, OPTIONS, streamed body flushed early', async () => {
  const srv = await listen(await loadHandler(path.join(fixtures, 'route.mjs')));
  try {
    const get = await request(srv.port, { path: '/api/t/9?q=z', headers: { 'x-apiroute-params': '{"id":"9"}' } });
    assert.deepEqual(JSON.parse(get.body), { params: { id: '9' }, q: 'z' });
    const stat = await request(srv.port, { path: '/api/t' });
    assert.deepEqual(JSON.parse(stat.body), { params: null, q: null });
    const del = await request(srv.port, { method: 'DELETE' });
    assert.equal(del.status, 405);
    const opt = await request(srv.port, { method: 'OPTIONS' });
    assert.equal(opt.status, 204);
    assert.equal(opt.headers.allow, 'GET, HEAD, OPTIONS, POST');
    const head = await request(srv.port, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const bad = await request(srv.port, { method: 'PROPFIND' });
    assert.equal(bad.status, 400);
    const post = await request(srv.port, { method: 'POST', body: 'payload' });
    assert.equal(post.body, 'first;payload');
    assert.ok(post.chunks.length >= 2, 'body arrives in more than one chunk');
    assert.ok(post.chunks[1].at - post.chunks[0].at >= 150, 'first chunk was flushed before the second was produced');
  } finally {
    await srv.close();
  }
});

test('TypeScript is refused at serve time with a pointer to build', async () => {
  await assert.rejects(loadHandler(path.join(fixtures, 'typed.ts')), /compile it first with `apiroutes-node build/);
});

test('bin: SIGTERM drains (in-flight request finishes, new connections refused, exit 0)', async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, path.join(fixtures, 'slow.mjs')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), APIROUTES_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.resume();
  try {
    for (let i = 0; i < 100; i++) {
      if ((await request(port, { path: '/healthz' }).catch(() => null))?.status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const inFlight = request(port, { path: '/api/slow?ms=500' });
    await new Promise((r) => setTimeout(r, 100));
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    await assert.rejects(request(port, { path: '/healthz' }), /ECONNREFUSED/);
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'slow done');
    assert.equal(await exited, 0);
    // The runtime's own lines are JSON with the platform's keys.
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const draining = lines.find((l) => l.message === 'SIGTERM: draining');
    assert.ok(draining, stdout);
    assert.equal(draining.level, 'INFO');
    assert.equal(draining.target, 'apiroutes_node');
    assert.equal(draining.signal, 'SIGTERM');
    assert.ok(!Number.isNaN(Date.parse(draining.timestamp)));
    assert.ok(lines.some((l) => l.message === 'drained; exiting'), stdout);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('the next/server hook is only installed for files that import it', async () => {
  const { importsNextServer } = await import('../src/resolve.js');
  assert.equal(importsNextServer("import { NextResponse } from 'next/server';"), true);
  assert.equal(importsNextServer('const m = await import("next/server.js")'), true);
  assert.equal(importsNextServer("export default (req, res) => res.send('next/server')"), false);
});

test('next/headers stand-in: cookies() set reaches the response, headers(), draftMode()', async () => {
  const srv = await listen(await loadHandler(path.join(fixtures, 'headers-route.mjs')));
  try {
    const r = await request(srv.port, { headers: { cookie: 'theme=dark', 'x-agent': 'test', 'x-apiroute-preview': 'e30' } });
    assert.deepEqual(JSON.parse(r.body), { theme: 'dark', agent: 'test', draft: true });
    assert.deepEqual(r.headers['set-cookie'], ['seen=1; Path=/; HttpOnly']);
    const post = await request(srv.port, { method: 'POST' });
    assert.equal(post.status, 204);
    assert.equal(post.headers['x-apiroute-preview-set'], Buffer.from('{"data":{},"options":{}}').toString('base64url'));
  } finally {
    await srv.close();
  }
});

test('edge API route: params replace query keys in place in the Request URL', async () => {
  const loaded = await loadHandler(path.join(fixtures, 'edge.mjs'));
  assert.equal(loaded.kind, 'edge');
  const srv = await listen(loaded);
  try {
    const r = await request(srv.port, { path: '/api/e/7?id=8&x=1', headers: { 'x-apiroute-params': '{"id":"7"}' } });
    assert.deepEqual(JSON.parse(r.body), { search: [['id', '7'], ['x', '1']], method: 'GET' });
  } finally {
    await srv.close();
  }
});

test('APIROUTES_HANDLERS: one process serves several route files by pattern header, sharing module state', async () => {
  const port = await freePort();
  const shared = path.join(fixtures, 'shared');
  const child = spawn(process.execPath, [bin], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      APIROUTES_HANDLERS: JSON.stringify({
        '/api/users': path.join(shared, 'users.mjs'),
        '/api/users/count': path.join(shared, 'count.mjs'),
      }),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    for (let i = 0; i < 100; i++) {
      if ((await request(port, { path: '/healthz' }).catch(() => null))?.status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const added = await request(port, {
      method: 'POST',
      path: '/api/users',
      headers: { 'content-type': 'application/json', 'x-apiroute-pattern': '/api/users' },
      body: '{"name":"ada"}',
    });
    assert.equal(added.status, 201, stderr);
    const read = await request(port, { path: '/api/users/count', headers: { 'x-apiroute-pattern': '/api/users/count' } });
    assert.equal(read.status, 200, stderr);
    assert.deepEqual(JSON.parse(read.body), { users: ['ada'] });
    // A pattern the function does not serve is no handler's.
    const other = await request(port, { path: '/api/x', headers: { 'x-apiroute-pattern': '/api/x' } });
    assert.equal(other.status, 404);
    assert.equal((await request(port, { path: '/api/users' })).status, 404);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});

test('APIROUTES_HANDLERS must be a JSON object of pattern to file', async () => {
  const { parseHandlers } = await import('../src/server.js');
  assert.deepEqual([...parseHandlers('{"/api/a":"a.mjs"}')], [['/api/a', 'a.mjs']]);
  assert.throws(() => parseHandlers('[]'), /JSON object/);
  assert.throws(() => parseHandlers('{'), /JSON object/);
  assert.throws(() => parseHandlers('{}'), /no handler/);
  assert.throws(() => parseHandlers('{"/a":1}'), /non-empty string/);
});
