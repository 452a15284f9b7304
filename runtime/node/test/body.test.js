import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBody } from '../src/body.js';
import { parseBytes } from '../src/bytes.js';
import { requestMediaType } from '../src/content-type.js';
import { fakeRequest } from './helpers.js';

const json = { 'content-type': 'application/json' };

/** @param {Promise<unknown>} p */
async function apiError(p) {
  try {
    await p;
  } catch (err) {
    return { status: /** @type {any} */ (err).statusCode, message: /** @type {Error} */ (err).message };
  }
  assert.fail('expected an ApiError');
}

test('sizes: 1024-based units, bare numbers are bytes', () => {
  assert.equal(parseBytes('1mb'), 1048576);
  assert.equal(parseBytes('1.5KB'), 1536);
  assert.equal(parseBytes('100'), 100);
  assert.equal(parseBytes(500), 500);
  assert.equal(parseBytes('lots'), null);
});

test('media types: strict parse, invalid means text/plain', () => {
  assert.deepEqual(requestMediaType('Application/JSON; Charset="utf-8"'), { type: 'application/json', parameters: Object.assign(Object.create(null), { charset: 'utf-8' }) });
  assert.equal(requestMediaType('application/json;;').type, 'text/plain');
  assert.equal(requestMediaType(undefined).type, 'text/plain');
});

test('JSON: parsed, empty is {}, invalid is 400 Invalid JSON', async () => {
  assert.deepEqual(await parseBody(/** @type {any} */ (fakeRequest('{"a":[1]}', json)), '1mb'), { a: [1] });
  assert.deepEqual(await parseBody(/** @type {any} */ (fakeRequest('', json)), '1mb'), {});
  assert.deepEqual(await apiError(parseBody(/** @type {any} */ (fakeRequest('{', json)), '1mb')), { status: 400, message: 'Invalid JSON' });
  assert.deepEqual(await parseBody(/** @type {any} */ (fakeRequest('{"x":1}', { 'content-type': 'application/ld+json' })), '1mb'), { x: 1 });
});

test('forms: repeated keys become arrays', async () => {
  const body = await parseBody(/** @type {any} */ (fakeRequest('email=a%40b.c&t=1&t=2', { 'content-type': 'application/x-www-form-urlencoded' })), '1mb');
  assert.deepEqual({ ...(/** @type {object} */ (body)) }, { email: 'a@b.c', t: ['1', '2'] });
});

test('other types are text, decoded by charset; BOM dropped', async () => {
  assert.equal(await parseBody(/** @type {any} */ (fakeRequest('plain', {})), '1mb'), 'plain');
  assert.equal(await parseBody(/** @type {any} */ (fakeRequest(Buffer.from([0x63, 0xe9]), { 'content-type': 'text/plain; charset=latin1' })), '1mb'), 'cé');
  assert.deepEqual(await parseBody(/** @type {any} */ (fakeRequest('\ufeff{"b":1}', json)), '1mb'), { b: 1 });
  assert.deepEqual(await apiError(parseBody(/** @type {any} */ (fakeRequest('x', { 'content-type': 'text/plain; charset=nope' })), '1mb')), { status: 400, message: 'Invalid body' });
});

test('size limit: exactly the limit passes, one more byte is 413 with the configured text', async () => {
  assert.equal(await parseBody(/** @type {any} */ (fakeRequest('x'.repeat(1024), {})), '1kb'), 'x'.repeat(1024));
  assert.deepEqual(await apiError(parseBody(/** @type {any} */ (fakeRequest('x'.repeat(1025), {})), '1kb')), { status: 413, message: 'Body exceeded 1kb limit' });
  assert.deepEqual(await apiError(parseBody(/** @type {any} */ (fakeRequest('x'.repeat(101), {})), 100)), { status: 413, message: 'Body exceeded 100 limit' });
});
