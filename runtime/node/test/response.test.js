import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateETag, isFresh } from '../src/etag.js';
import { decodeJson, encodePreviewClear, encodePreviewSet, readPreviewData } from '../src/preview.js';

test("ETags are Next's FNV-1a 52 hash plus length, base 36", () => {
  // ETags that next start 16.4.6 sent for the same res.send() payloads.
  assert.equal(generateETag('plain text body'), '"10j36gdoea9f"');
  assert.equal(generateETag('{"a":1,"b":[true,null]}'), '"zvtkrgyk5bn"');
  assert.equal(generateETag('héllo wörld ✓'), '"bmtumnvjkrd"');
  // A Buffer's ETag is taken over its JSON form, as Next does.
  assert.equal(generateETag(JSON.stringify(Buffer.from('binary\u0000data'))), '"26q7qhvxxo1s"');
});

test('conditional requests: If-None-Match (weak too, * too), no-cache wins, dates never match', () => {
  const etag = generateETag('x');
  assert.equal(isFresh({ 'if-none-match': etag }, etag), true);
  assert.equal(isFresh({ 'if-none-match': `"other", ${etag}` }, etag), true);
  assert.equal(isFresh({ 'if-none-match': `W/${etag}` }, etag), true);
  assert.equal(isFresh({ 'if-none-match': '*' }, etag), true);
  assert.equal(isFresh({ 'if-none-match': etag, 'cache-control': 'no-cache' }, etag), false);
  assert.equal(isFresh({ 'if-modified-since': 'Wed, 21 Oct 2015 07:28:00 GMT' }, etag), false);
  assert.equal(isFresh({}, etag), false);
});

test('preview contract encodings', () => {
  const set = encodePreviewSet({ user: 'ann' }, { maxAge: 60, path: '/api', /** @type {any} */ ...{ ignored: 1 } });
  assert.match(set, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodeJson(set), { data: { user: 'ann' }, options: { maxAge: 60, path: '/api' } });
  assert.deepEqual(decodeJson(encodePreviewSet('s', undefined)), { data: 's', options: {} });
  assert.equal(encodePreviewClear(undefined), '1');
  assert.deepEqual(decodeJson(encodePreviewClear({ path: '/x' })), { options: { path: '/x' } });
  assert.throws(() => encodePreviewSet({ big: 'x'.repeat(3000) }, {}), /Preview data is limited to 2KB/);
});

test('preview request header: data, false when absent or malformed', () => {
  assert.deepEqual(readPreviewData(Buffer.from('{"n":7}').toString('base64url')), { n: 7 });
  assert.equal(readPreviewData(undefined), false);
  assert.equal(readPreviewData('%%%'), false);
});
