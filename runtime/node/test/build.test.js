import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build, findSources } from '../src/build.js';
import { loadHandler } from '../src/load.js';
import { listen, request } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

test('build: a TypeScript route file becomes one ESM file that serves, next/server bundled', async () => {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-build-'));
  try {
    const [file] = await build(path.join(fixtures, 'typed.ts'), out);
    assert.equal(file, path.join(out, 'typed.mjs'));
    const srv = await listen(await loadHandler(file));
    try {
      assert.deepEqual(JSON.parse((await request(srv.port)).body), { greeting: 'typed' });
    } finally {
      await srv.close();
    }
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});

test('build: app trees skip UI files, pages trees keep every file', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-src-'));
  try {
    for (const f of ['app/api/x/route.ts', 'app/page.tsx', 'app/layout.tsx', 'pages/api/error.js', 'pages/api/_lib/skip.js']) {
      await fs.mkdir(path.dirname(path.join(root, f)), { recursive: true });
      await fs.writeFile(path.join(root, f), 'export {}');
    }
    const app = (await findSources(path.join(root, 'app'))).files.map((f) => path.relative(root, f));
    assert.deepEqual(app, [path.join('app', 'api', 'x', 'route.ts')]);
    const pages = (await findSources(path.join(root, 'pages'))).files.map((f) => path.relative(root, f));
    assert.deepEqual(pages, [path.join('pages', 'api', 'error.js')]);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
