import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadEnvConfig, parseDotenv } from '../src/dotenv.js';
import { declaresEdgeRuntime, defineNextGlobals } from '../src/next-globals.js';

/** @param {Record<string, string>} files */
async function appDir(files) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-env-'));
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

test('.env files: next start precedence (process env > .env.production.local > .env.local > .env.production > .env)', async () => {
  const dir = await appDir({
    '.env': 'A=env\nB=env\nC=env\nD=env\nONLY=env\nPROC=env\n',
    '.env.production': 'B=production\nC=production\nD=production\n',
    '.env.local': 'C=local\nD=local\n',
    '.env.production.local': 'D=production.local\n',
    '.env.development': 'DEV=never\n',
    '.env.test': 'TEST=only in test\n',
  });
  try {
    /** @type {Record<string, string | undefined>} */
    const env = { PROC: 'process' };
    const { loaded, parsed } = loadEnvConfig(dir, { env });
    assert.deepEqual(loaded, ['.env.production.local', '.env.local', '.env.production', '.env']);
    assert.deepEqual(
      { A: env.A, B: env.B, C: env.C, D: env.D, PROC: env.PROC, DEV: env.DEV, TEST: env.TEST },
      { A: 'env', B: 'production', C: 'local', D: 'production.local', PROC: 'process', DEV: undefined, TEST: undefined },
    );
    assert.equal(env.__NEXT_PROCESSED_ENV, 'true');
    assert.equal(parsed.PROC, undefined);
    /** @type {Record<string, string | undefined>} */
    const testEnv = { NODE_ENV: 'test' };
    assert.deepEqual(loadEnvConfig(dir, { env: testEnv }).loaded, ['.env.test', '.env']);
    assert.equal(testEnv.TEST, 'only in test');
    assert.equal(testEnv.C, 'env');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('.env syntax and expansion as dotenv 16.3.1 + Next: quotes, export, comments, ${VAR:-default}, \\$', async () => {
  assert.deepEqual(
    parseDotenv('export E=1\n# C=no\nQ="a\\nb"\nS=\'a\\nb\'\nB=`t`\nI=value # note\nEMPTY=\nSP =  x y  \nM="one\ntwo"\n'),
    { E: '1', Q: 'a\nb', S: 'a\\nb', B: 't', I: 'value', EMPTY: '', SP: 'x y', M: 'one\ntwo' },
  );
  const dir = await appDir({
    '.env': 'BASE=b\nX=${BASE}-$BASE\nD=${MISSING:-fallback}\nL=\\$NOT\nSQ=\'$BASE\'\nFROM_PROC=${PROC}\nSELF=${SELF}x\n',
  });
  try {
    /** @type {string[]} */
    const logs = [];
    /** @type {Record<string, string | undefined>} */
    const env = { PROC: 'p' };
    loadEnvConfig(dir, { env, log: (l) => logs.push(l) });
    // A self-reference overflows the stack in Next too: the whole file is skipped and reported.
    assert.equal(env.BASE, undefined);
    assert.match(logs.join('\n'), /Failed to load env from .*\.env: RangeError/);
    await fs.writeFile(path.join(dir, '.env'), 'BASE=b\nX=${BASE}-$BASE\nD=${MISSING:-fallback}\nL=\\$NOT\nSQ=\'$BASE\'\nFROM_PROC=${PROC}\n');
    /** @type {Record<string, string | undefined>} */
    const env2 = { PROC: 'p' };
    loadEnvConfig(dir, { env: env2 });
    assert.deepEqual(
      { X: env2.X, D: env2.D, L: env2.L, SQ: env2.SQ, FROM_PROC: env2.FROM_PROC },
      { X: 'b-b', D: 'fallback', L: '$NOT', SQ: 'b', FROM_PROC: 'p' },
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('no env files: nothing loaded, no __NEXT_PROCESSED_ENV', async () => {
  const dir = await appDir({});
  try {
    /** @type {Record<string, string | undefined>} */
    const env = {};
    assert.deepEqual(loadEnvConfig(dir, { env }).loaded, []);
    assert.deepEqual(env, {});
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("the markers next start defines, Node and edge", () => {
  /** @type {NodeJS.ProcessEnv} */
  const env = {};
  defineNextGlobals({ host: '0.0.0.0', port: 8080, env, now: 1234 });
  assert.deepEqual(env, {
    NEXT_RUNTIME: 'nodejs',
    NEXT_DEPLOYMENT_ID: '',
    NEXT_PRIVATE_START_TIME: '1234',
    __NEXT_PRIVATE_ORIGIN: 'http://localhost:8080',
  });
  const g = /** @type {any} */ (globalThis);
  assert.equal(g.NEXT_CLIENT_ASSET_SUFFIX, '');
  assert.equal(typeof g.__NEXT_HTTP_AGENT, 'object');
  assert.deepEqual(g.__NEXT_HTTP_AGENT_OPTIONS, { keepAlive: true });
  assert.equal(typeof g.AsyncLocalStorage, 'function');
  /** @type {NodeJS.ProcessEnv} */
  const edgeEnv = { NEXT_DEPLOYMENT_ID: 'd1' };
  defineNextGlobals({ host: '::', port: 1, edge: true, env: edgeEnv });
  assert.equal(edgeEnv.NEXT_RUNTIME, 'edge');
  assert.equal(edgeEnv.NEXT_DEPLOYMENT_ID, 'd1');
  assert.equal(edgeEnv.__NEXT_PRIVATE_ORIGIN, 'http://[::1]:1');
  assert.equal(g.EdgeRuntime, 'edge-runtime');
  assert.equal(declaresEdgeRuntime("export const config = { runtime: 'edge' };"), true);
  assert.equal(declaresEdgeRuntime('var config = { runtime: "experimental-edge" };'), true);
  assert.equal(declaresEdgeRuntime("export const runtime = 'nodejs';"), false);
});

test('`apiroutes-node env`: the files deploy ships, as JSON, without .local files unless asked, and without the process environment', async () => {
  const { execFileSync } = await import('node:child_process');
  const bin = new URL('../bin/apiroutes-node.js', import.meta.url).pathname;
  const dir = await appDir({
    '.env': 'A=env\nB=env\nFROM_PROC=${HOME}-x\n',
    '.env.production': 'B=production\n',
    '.env.local': 'A=local\nSECRET=mine\n',
  });
  try {
    const run = (/** @type {string[]} */ extra) =>
      JSON.parse(execFileSync(process.execPath, [bin, 'env', dir, ...extra], { encoding: 'utf8', env: { ...process.env, HOME: '/home/dev' } }));
    assert.deepEqual(run([]), { loaded: ['.env.production', '.env'], variables: { A: 'env', B: 'production', FROM_PROC: '-x' } });
    assert.deepEqual(run(['--local']), {
      loaded: ['.env.local', '.env.production', '.env'],
      variables: { A: 'local', SECRET: 'mine', B: 'production', FROM_PROC: '-x' },
    });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
