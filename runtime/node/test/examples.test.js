// The examples/nextjs tree runs under the runtime, with the headers the gateway adds.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadHandler } from '../src/load.js';
import { decodeJson, encodeJson } from '../src/preview.js';
import { listen, request } from './helpers.js';

const api = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'nextjs', 'pages', 'api');

/**
 * Serves one example file and sends one request to it.
 * @param {string} file relative to pages/api
 * @param {Parameters<typeof request>[1]} opts
 */
async function call(file, opts) {
  const srv = await listen(await loadHandler(path.join(api, file)));
  try {
    return await request(srv.port, opts);
  } finally {
    await srv.close();
  }
}

test('hello', async () => {
  const r = await call('hello.js', { path: '/api/hello' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
  assert.deepEqual(JSON.parse(r.body), { message: 'Hello from a Next.js API route on apiroutes' });
});

test('users/[id] gets its parameter', async () => {
  const r = await call('users/[id].js', {
    path: '/api/users/42?id=query-loses',
    headers: { 'x-apiroute-params': '{"id":"42"}', 'x-apiroute-pattern': '/api/users/[id]' },
  });
  assert.deepEqual(JSON.parse(r.body), { id: '42', name: 'User 42' });
});

test('docs/[...slug] gets an array', async () => {
  const r = await call('docs/[...slug].js', { path: '/api/docs/a/b', headers: { 'x-apiroute-params': '{"slug":["a","b"]}' } });
  assert.deepEqual(JSON.parse(r.body), { slug: ['a', 'b'], path: 'a/b' });
});

test('shop/[[...path]] with and without segments', async () => {
  const none = await call('shop/[[...path]].js', { path: '/api/shop', headers: { 'x-apiroute-params': '{"path":null}' } });
  assert.deepEqual(JSON.parse(none.body), { path: null, section: 'home' });
  const some = await call('shop/[[...path]].js', { path: '/api/shop/shoes/red', headers: { 'x-apiroute-params': '{"path":["shoes","red"]}' } });
  assert.deepEqual(JSON.parse(some.body), { path: ['shoes', 'red'], section: 'shoes' });
});

test('subscribe returns req.body.email from a form POST', async () => {
  const r = await call('subscribe.js', {
    method: 'POST',
    path: '/api/subscribe',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'email=ada%40example.com',
  });
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { subscribed: true, email: 'ada@example.com' });
  const get = await call('subscribe.js', { path: '/api/subscribe' });
  assert.equal(get.status, 405);
});

test('preview: enable sets the contract header, article changes with x-apiroute-preview', async () => {
  const enable = await call('preview/enable.js', { path: '/api/preview/enable?secret=preview-secret&slug=draft-1' });
  assert.equal(enable.status, 307);
  assert.equal(enable.headers.location, '/api/preview/article');
  const set = /** @type {any} */ (decodeJson(String(enable.headers['x-apiroute-preview-set'])));
  assert.deepEqual(set, { data: { slug: 'draft-1' }, options: { maxAge: 3600 } });

  const published = await call('preview/article.js', { path: '/api/preview/article' });
  assert.deepEqual(JSON.parse(published.body), { article: 'published' });
  const draft = await call('preview/article.js', { path: '/api/preview/article', headers: { 'x-apiroute-preview': encodeJson(set.data) } });
  assert.deepEqual(JSON.parse(draft.body), { article: 'draft', slug: 'draft-1' });

  const disable = await call('preview/disable.js', { path: '/api/preview/disable' });
  assert.equal(disable.headers['x-apiroute-preview-clear'], '1');
  const denied = await call('preview/enable.js', { path: '/api/preview/enable?secret=wrong' });
  assert.equal(denied.status, 401);
  assert.equal(denied.headers['x-apiroute-preview-set'], undefined);
});
