// Behaviours copied from `next start` 16.4.6: res.setHeader's Set-Cookie handling, 1xx
// statuses, cookies(), next/navigation, App Route URLs and HEAD, and the broken preview
// pair. The expected values are Next's answers (conformance/ compares them live).
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { classifyModule, loadHandler } from '../src/load.js';
import { appendMutableCookies, mutableRequestCookies, RequestCookies, ResponseCookies } from '../src/next-cookies.js';
import { installNextServerResolution } from '../src/resolve.js';
import { listen, request } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
installNextServerResolution();

const CLEAR = [
  '__prerender_bypass=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None',
  '__next_preview_data=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None',
];

/**
 * @param {(req: any, res: any) => unknown} handler
 */
function pages(handler) {
  return classifyModule('inline.mjs', { default: handler });
}

test("res.setHeader('Set-Cookie', …) is stored as a deduplicated array; setHeader after the answer is ignored", async () => {
  /** @type {unknown[]} */
  const seen = [];
  const srv = await listen(
    pages((req, res) => {
      if (req.url.includes('string')) res.setHeader('Set-Cookie', 'a=1; Path=/');
      if (req.url.includes('dupes')) res.setHeader('Set-Cookie', ['a=1', 'b=2', 'a=1']);
      if (req.url.includes('number')) res.setHeader('Set-Cookie', 5);
      seen.push(res.getHeader('Set-Cookie'));
      res.json({ ok: true });
      res.setHeader('X-Late', 'late');
    }),
  );
  try {
    const string = await request(srv.port, { path: '/string' });
    assert.deepEqual(string.headers['set-cookie'], ['a=1; Path=/']);
    assert.equal(string.status, 200);
    assert.equal(string.headers['x-late'], undefined);
    const dupes = await request(srv.port, { path: '/dupes' });
    assert.deepEqual(dupes.headers['set-cookie'], ['a=1', 'b=2']);
    const number = await request(srv.port, { path: '/number' });
    assert.equal(number.headers['set-cookie'], undefined);
    assert.deepEqual(seen, [['a=1; Path=/'], ['a=1', 'b=2'], []]);
  } finally {
    await srv.close();
  }
});

test('a pages handler answering with a 1xx status gets a clean 500, and the connection stays usable', async () => {
  const srv = await listen(
    pages((req, res) => {
      if (req.url === '/hints') {
        res.writeEarlyHints({ link: '</a.css>; rel=preload; as=style' });
        return res.json({ after: 'hints' });
      }
      if (req.url === '/continue') return res.status(100).send('continue?');
      if (req.url === '/processing') return res.writeHead(102, { 'x-kind': 'processing' }).end();
      res.json({ fine: true });
    }),
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  /** @param {string} p */
  const get = (p) =>
    new Promise((resolve, reject) => {
      /** @type {number[]} */
      const infos = [];
      const req = http.get({ host: '127.0.0.1', port: srv.port, path: p, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, infos }));
      });
      req.on('information', (i) => infos.push(i.statusCode));
      req.on('error', reject);
    });
  try {
    for (const p of ['/continue', '/processing']) {
      const r = /** @type {any} */ (await get(p));
      assert.equal(r.status, 500);
      assert.equal(r.body, 'Internal Server Error');
      assert.equal(r.headers.etag, undefined);
      assert.equal(r.headers['x-kind'], undefined);
      assert.deepEqual(r.infos, []);
      const after = /** @type {any} */ (await get('/fine'));
      assert.equal(after.body, '{"fine":true}', `request after ${p} on the same connection`);
    }
    const hints = /** @type {any} */ (await get('/hints'));
    assert.deepEqual(hints.infos, [103]);
    assert.equal(hints.body, '{"after":"hints"}');
  } finally {
    agent.destroy();
    await srv.close();
  }
});

test("cookies(): Next's jar (entries carry path '/'), Set-Cookie order after deletes and sets, the response's own cookies win", () => {
  const jar = mutableRequestCookies(new RequestCookies(new Headers({ cookie: 'a=1; b=2; c=3; enc=%20x; bad=%zz; flag' })));
  assert.deepEqual(jar.get('a'), { name: 'a', value: '1', path: '/' });
  assert.deepEqual(
    jar.getAll().map((c) => c.name),
    ['a', 'b', 'c', 'enc', 'flag'],
  );
  assert.deepEqual(jar.get('flag'), { name: 'flag', value: 'true', path: '/' });
  assert.equal(/** @type {any} */ (jar).size, undefined);
  assert.equal(jar.toString(), 'a=1; Path=/; b=2; Path=/; c=3; Path=/; enc=%20x; Path=/; flag=true; Path=/');
  assert.equal(jar.set('new', 'n v'), jar);
  jar.delete('b');
  jar.set('a', '2', { httpOnly: true });
  jar.delete({ name: 'c', path: '/c', domain: 'example.com' });
  jar.set({ name: 'obj', value: 'v;w', sameSite: 'lax', secure: true, path: '/x', priority: 'high', partitioned: true });
  jar.set('new', 'again');
  assert.deepEqual(jar.get('b'), { name: 'b', value: '', expires: new Date(0), path: '/' });
  const headers = new Headers();
  assert.equal(appendMutableCookies(headers, jar), true);
  assert.deepEqual(headers.getSetCookie(), [
    'a=2; Path=/; HttpOnly',
    'b=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT',
    'c=; Path=/c; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com',
    'new=again; Path=/',
    'obj=v%3Bw; Path=/x; Secure; SameSite=lax; Partitioned; Priority=high',
  ]);
  const own = mutableRequestCookies(new RequestCookies(new Headers({ cookie: 'a=1' })));
  own.set('z', 'from-jar');
  own.set('a', 'from-jar');
  const response = new Headers([
    ['set-cookie', 'own=1; HttpOnly'],
    ['set-cookie', 'a=from-response; Path=/a'],
    ['set-cookie', 'own=2'],
  ]);
  appendMutableCookies(response, own);
  assert.deepEqual(response.getSetCookie(), ['own=2; Path=/', 'a=from-response; Path=/a', 'z=from-jar; Path=/']);
  const untouched = new Headers([['set-cookie', 'own=1; HttpOnly']]);
  assert.equal(appendMutableCookies(untouched, mutableRequestCookies(new RequestCookies(new Headers()))), false);
  assert.deepEqual(untouched.getSetCookie(), ['own=1; HttpOnly']);
  const rc = new ResponseCookies(new Headers([['set-cookie', 'x=1; Max-Age=5; SameSite=Strict; Secure']]));
  assert.deepEqual(Object.keys(/** @type {any} */ (rc.get('x'))), ['name', 'value', 'maxAge', 'sameSite', 'secure']);
});

test('next/navigation in an unbuilt route: redirect 307 with cookies, 303 for a form POST, 308, empty 404, forbidden() 500 unless enabled', async () => {
  const srv = await listen(await loadHandler(path.join(fixtures, 'extless', 'pages', 'navigation-route.js')));
  try {
    const r = await request(srv.port, { path: '/n?do=redirect' });
    assert.equal(r.status, 307);
    assert.equal(r.headers.location, '/to');
    assert.deepEqual(r.headers['set-cookie'], ['flash=kept; Path=/']);
    assert.equal(r.body, '');
    const form = await request(srv.port, {
      method: 'POST',
      path: '/n?do=permanent',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1',
    });
    assert.equal(form.status, 303);
    assert.equal(form.headers.location, '/moved');
    const json = await request(srv.port, { method: 'POST', path: '/n?do=permanent', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(json.status, 308);
    const missing = await request(srv.port, { path: '/n?do=not-found' });
    assert.equal(missing.status, 404);
    assert.equal(missing.body, '');
    assert.equal(missing.headers['set-cookie'], undefined);
    const forbidden = await request(srv.port, { path: '/n?do=forbidden' });
    assert.equal(forbidden.status, 500);
    process.env.__NEXT_EXPERIMENTAL_AUTH_INTERRUPTS = 'true';
    try {
      assert.equal((await request(srv.port, { path: '/n?do=forbidden' })).status, 403);
    } finally {
      delete process.env.__NEXT_EXPERIMENTAL_AUTH_INTERRUPTS;
    }
  } finally {
    await srv.close();
  }
});

test("an App Route's request.url re-serializes the query as Next does; its own Content-Length is not sent", async () => {
  const srv = await listen(await loadHandler(path.join(fixtures, 'extless', 'pages', 'navigation-route.js')));
  try {
    const r = await request(srv.port, { path: '/n?a=1&b=2&a=3&c&x=%20+y&nxtPid=1&id=2', headers: { host: 'h.example' } });
    assert.deepEqual(JSON.parse(r.body), { url: 'http://h.example/n?a=1&a=3&b=2&c=&x=++y&id=2', search: '?a=1&a=3&b=2&c=&x=++y&id=2' });
    const head = await request(srv.port, { method: 'HEAD', path: '/n' });
    assert.equal(head.headers['x-head'], '1');
    assert.equal(head.headers['content-length'], undefined);
  } finally {
    await srv.close();
  }
});

test('x-apiroute-preview-invalid: Next clearing cookies before the handler (pages and app), clearPreviewData() then a no-op', async () => {
  const invalid = { 'x-apiroute-preview-invalid': '1', cookie: '__next_preview_data=forged' };
  const srv = await listen(
    pages((req, res) => {
      if (req.url === '/replace') res.setHeader('Set-Cookie', ['mine=1']);
      if (req.url === '/append') res.appendHeader('Set-Cookie', 'mine=1');
      if (req.url === '/clear') res.clearPreviewData();
      res.json({ preview: req.preview ?? null });
    }),
  );
  try {
    const plain = await request(srv.port, { path: '/', headers: invalid });
    assert.deepEqual(plain.headers['set-cookie'], CLEAR);
    assert.equal(plain.body, '{"preview":null}');
    assert.deepEqual((await request(srv.port, { path: '/replace', headers: invalid })).headers['set-cookie'], ['mine=1']);
    assert.deepEqual((await request(srv.port, { path: '/append', headers: invalid })).headers['set-cookie'], [...CLEAR, 'mine=1']);
    const clear = await request(srv.port, { path: '/clear', headers: invalid });
    assert.deepEqual(clear.headers['set-cookie'], CLEAR);
    assert.equal(clear.headers['x-apiroute-preview-clear'], undefined);
    assert.deepEqual((await request(srv.port, { path: '/' })).headers['set-cookie'], undefined);
  } finally {
    await srv.close();
  }
  const app = await listen(await loadHandler(path.join(fixtures, 'headers-route.mjs')));
  try {
    const r = await request(app.port, { headers: invalid });
    assert.deepEqual(r.headers['set-cookie'], [...CLEAR, 'seen=1; Path=/; HttpOnly']);
  } finally {
    await app.close();
  }
});
