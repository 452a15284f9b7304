// The res helpers and req fields of a pages/api handler, over loopback HTTP.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadHandler } from '../src/load.js';
import { decodeJson, encodeJson } from '../src/preview.js';
import { listen, request } from './helpers.js';

const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'helpers-kinds.mjs');
/** @type {Awaited<ReturnType<typeof listen>>} */
let srv;
before(async () => {
  srv = await listen(await loadHandler(file));
});
after(async () => {
  await srv.close();
});
/** @param {string} kind @param {Record<string, string>} [headers] */
const kind = (kind, headers) => request(srv.port, { path: `/api/h?kind=${kind}`, headers });

test('send: stream is octet-stream without ETag; Buffer gets ETag and length; number is JSON', async () => {
  const stream = await kind('stream');
  assert.equal(stream.headers['content-type'], 'application/octet-stream');
  assert.equal(stream.headers.etag, undefined);
  assert.equal(stream.body, 'ab');
  const buf = await kind('buffer');
  assert.equal(buf.headers['content-type'], 'application/octet-stream');
  assert.equal(buf.headers['content-length'], '3');
  assert.ok(buf.headers.etag);
  const num = await kind('number');
  assert.equal(num.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(num.body, '7');
});

test('send: 204 drops the body; If-None-Match gives 304', async () => {
  const r = await kind('204');
  assert.equal(r.status, 204);
  assert.equal(r.body, '');
  const first = await kind('number');
  const again = await kind('number', { 'if-none-match': String(first.headers.etag) });
  assert.equal(again.status, 304);
});

test('redirect: 307 default, explicit status, invalid arguments are a 500', async () => {
  const r = await kind('redirect');
  assert.equal(r.status, 307);
  assert.equal(r.headers.location, '/to');
  assert.equal(r.body, '/to');
  assert.equal((await kind('redirect301')).status, 301);
  const bad = await kind('bad-redirect');
  assert.equal(bad.status, 500);
  assert.equal(bad.body, 'Internal Server Error');
});

test('a thrown error is a 500 with Next status text and body', async () => {
  const r = await kind('throw');
  assert.equal(r.status, 500);
  assert.equal(r.statusText, 'Internal Server Error');
  assert.equal(r.body, 'Internal Server Error');
});

test('preview: last call wins; draft mode is preview with {}; revalidate says not supported', async () => {
  const last = await kind('preview-last-wins');
  assert.equal(last.headers['x-apiroute-preview-clear'], '1');
  assert.equal(last.headers['x-apiroute-preview-set'], undefined);
  const draft = await kind('draft');
  assert.deepEqual(decodeJson(String(draft.headers['x-apiroute-preview-set'])), { data: {}, options: {} });
  const reval = await kind('revalidate');
  assert.equal(reval.status, 501);
  assert.match(reval.body, /not supported by apiroutes/);
});

test('req.preview / previewData / draftMode with and without the gateway header', async () => {
  assert.deepEqual(JSON.parse((await kind('preview')).body), { preview: null, previewData: false, draftMode: null });
  const on = await kind('preview', { 'x-apiroute-preview': encodeJson({ slug: 's' }) });
  assert.deepEqual(JSON.parse(on.body), { preview: true, previewData: { slug: 's' }, draftMode: true });
});

test('req.cookies', async () => {
  assert.deepEqual(JSON.parse((await kind('cookies', { cookie: 'a=1; b=%20x; a=2' })).body), { a: '1', b: ' x' });
});

test('x-apiroute-* headers are consumed, not shown; x-forwarded-* filled in like next start', async () => {
  const r = await kind('headers', { 'x-apiroute-params': '{}', 'x-apiroute-name': 'ns/name', 'x-forwarded-host': 'shop.example:8443' });
  const { headers, raw } = JSON.parse(r.body);
  assert.deepEqual(Object.keys(headers).filter((h) => h.startsWith('x-apiroute-')), []);
  assert.equal(raw.some((/** @type {string} */ h) => h.toLowerCase().startsWith('x-apiroute-')), false);
  assert.equal(headers['x-forwarded-host'], 'shop.example:8443');
  assert.equal(headers['x-forwarded-port'], '8443');
  assert.equal(headers['x-forwarded-proto'], 'http');
  assert.equal(headers['x-forwarded-for'], '127.0.0.1');
});
