import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadHandler } from '../src/load.js';
import { installNextServerResolution, needsResolveHooks } from '../src/resolve.js';
import { freePort, listen, request } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const bin = path.join(fixtures, '..', '..', 'bin', 'apiroutes-node.js');

test('the hooks are needed for extension-less or next/* imports, also in imported files, not otherwise', async () => {
  assert.equal(await needsResolveHooks(path.join(fixtures, 'extless', 'pages', 'handler.js')), true);
  assert.equal(await needsResolveHooks(path.join(fixtures, 'hello.mjs')), false);
  assert.equal(await needsResolveHooks(path.join(fixtures, 'headers-route.mjs')), true);
  assert.equal(await needsResolveHooks(path.join(fixtures, 'extless', 'lib', 'db', 'index.js')), true);
  assert.equal(await needsResolveHooks(path.join(fixtures, 'extless', 'lib', 'greet.js')), false);
});

test('unbuilt: relative imports without an extension resolve like Next (.js, .mjs, then /index.js); TypeScript is refused with a pointer to build', async () => {
  installNextServerResolution();
  const srv = await listen(await loadHandler(path.join(fixtures, 'extless', 'pages', 'handler.js')));
  try {
    const r = await request(srv.port);
    assert.deepEqual(JSON.parse(r.body), { greet: 'hello x', db: 'index.js of a directory', flavour: 'mjs' });
  } finally {
    await srv.close();
  }
  await assert.rejects(loadHandler(path.join(fixtures, 'extless', 'pages', 'typed-import.js')), /lib\/typed\.ts, which Node cannot run: compile the handler first/);
});

test('bin: serves an unbuilt file with extension-less imports (hooks installed by the scan)', async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, path.join(fixtures, 'extless', 'pages', 'handler.js')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    /** @type {Awaited<ReturnType<typeof request>> | null} */
    let r = null;
    for (let i = 0; i < 100 && !r; i++) {
      r = await request(port, { path: '/api/x' }).catch(() => null);
      if (!r) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(r, `runtime did not start: ${stderr}`);
    assert.equal(JSON.parse(r.body).db, 'index.js of a directory');
  } finally {
    child.kill('SIGKILL');
  }
});
