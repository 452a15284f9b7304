import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCookies } from '../src/cookies.js';

test('pairs, first one wins, quotes dropped, values decoded', () => {
  assert.deepEqual(parseCookies('a=1; b="two"; a=3; c=%20x'), { a: '1', b: 'two', c: ' x' });
});

test('malformed escapes kept; pairs without = skipped; names trimmed', () => {
  assert.deepEqual(parseCookies('bad=%zz; novalue;  sp = 1 '), { bad: '%zz', sp: '1' });
});

test('inherited names are not overwritten, as in Next', () => {
  assert.deepEqual(Object.keys(parseCookies('constructor=1; ok=2')), ['ok']);
});

test('absent header gives {}; a list is joined', () => {
  assert.deepEqual(parseCookies(undefined), {});
  assert.deepEqual(parseCookies(['a=1', 'b=2']), { a: '1', b: '2' });
});
