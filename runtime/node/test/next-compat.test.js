// Behaviours copied from `next start` 16.4.6: res.setHeader's Set-Cookie handling and 1xx
// statuses. The expected values are Next's answers (conformance/ compares them live).
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { classifyModule } from '../src/load.js';
import { listen, request } from './helpers.js';

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

