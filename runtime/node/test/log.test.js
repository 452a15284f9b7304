import assert from 'node:assert/strict';
import test from 'node:test';
import { formatLine, logFormat } from '../src/log.js';

test('the log format is json unless asked otherwise or on a terminal', () => {
  assert.equal(logFormat({}, false), 'json');
  assert.equal(logFormat({}, true), 'text');
  assert.equal(logFormat({ APIROUTES_LOG_FORMAT: 'text' }, false), 'text');
  assert.equal(logFormat({ APIROUTES_LOG_FORMAT: 'JSON' }, true), 'json');
  assert.equal(logFormat({ APIROUTES_LOG_FORMAT: 'yaml' }, false), 'json');
});

test('json lines carry the keys the gateway and the operator write', () => {
  const now = new Date('2026-12-04T00:00:00.000Z');
  const line = JSON.parse(formatLine('json', 'warn', 'hello', { file: 'a.js', message: 'x' }, now));
  assert.deepEqual(line, {
    file: 'a.js',
    timestamp: '2026-12-04T00:00:00.000Z',
    level: 'WARN',
    target: 'apiroutes_node',
    message: 'hello',
  });
  assert.equal(formatLine('text', 'info', 'hello'), '[apiroutes-node] hello');
});
