import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeQuery, normalizeUrl, parseParams, parseQuery, readParams } from '../src/query.js';

test('repeated keys become arrays, in first-seen order', () => {
  assert.deepEqual(parseQuery('/x?a=1&b=2&a=3'), { a: ['1', '3'], b: '2' });
});

test('decoding: plus is space, malformed escapes stay, empty values', () => {
  assert.deepEqual(parseQuery('/x?s=a+b%20c&bad=%zz&e=&f'), { s: 'a b c', bad: '%zz', e: '', f: '' });
});

test("Next's internal keys are dropped, the bare prefixes kept", () => {
  assert.deepEqual(parseQuery('/x?nxtPid=1&nxtIx=2&nextInternalLocale=de&nxtP=3&k=4'), { nxtP: '3', k: '4' });
});

test('inherited names collect the inherited value first, as in Next', () => {
  const q = parseQuery('/x?constructor=y');
  assert.equal(JSON.stringify(q), '{"constructor":[null,"y"]}');
  assert.deepEqual(Object.keys(parseQuery('/x?__proto__=x')), []);
});

test('route parameters win over query keys', () => {
  assert.deepEqual(mergeQuery({ id: '6', x: '1' }, { id: '5' }), { id: '5', x: '1' });
  assert.deepEqual(mergeQuery({ slug: 'q' }, { slug: ['a', 'b'] }), { slug: ['a', 'b'] });
});

test('req.url is re-serialized without internal and parameter-named keys', () => {
  assert.equal(normalizeUrl('/api/echo?a=1&b=2&a=3', []), '/api/echo?a=1&a=3&b=2');
  assert.equal(normalizeUrl('/api/echo?a', []), '/api/echo?a=');
  assert.equal(normalizeUrl('/api/echo?x=%20+%2B&y=a;b', []), '/api/echo?x=++%2B&y=a%3Bb');
  assert.equal(normalizeUrl('/api/items/5?id=6&k=1', ['id']), '/api/items/5?k=1');
  assert.equal(normalizeUrl('/api/echo?nxtPa=1', []), '/api/echo');
  assert.equal(normalizeUrl('/api/echo', []), '/api/echo');
});

test('parameter names from the params header: a null value is a name without a value', () => {
  assert.deepEqual(readParams('{"a":"1","b":["x"]}'), { params: { a: '1', b: ['x'] }, names: ['a', 'b'] });
  assert.deepEqual(readParams('{"path":null}'), { params: {}, names: ['path'] });
  assert.deepEqual(readParams('{"n":1,"o":{}}'), { params: {}, names: [] });
  assert.deepEqual(readParams(undefined), { params: {}, names: [] });
  assert.deepEqual(readParams('not json'), { params: {}, names: [] });
});

test('params header: strings and string arrays; junk ignored', () => {
  assert.deepEqual(parseParams('{"id":"5","slug":["a","b"],"n":1}'), { id: '5', slug: ['a', 'b'] });
  assert.deepEqual(parseParams('{"id":"caf\\u00e9"}'), { id: 'café' });
  assert.deepEqual(parseParams(Buffer.from('{"id":"✓"}').toString('latin1')), { id: '✓' });
  assert.deepEqual(parseParams('not json'), {});
  assert.deepEqual(parseParams('[1]'), {});
  assert.deepEqual(parseParams(undefined), {});
});
