import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { BuildError, build, buildShared, findSources } from '../src/build.js';
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

test('build: every file that can be built is written; each failure is reported with its reason, at the end', async () => {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-build-'));
  try {
    const err = await build(path.join(fixtures, 'broken'), out).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof BuildError, String(err));
    assert.deepEqual(err.written.map((f) => path.relative(out, f)), [path.join('api', 'also-good.mjs'), path.join('api', 'good.mjs')]);
    assert.deepEqual(err.failures.map((f) => path.basename(f.file)), ['missing.js', 'syntax.js']);
    assert.match(err.failures[0].reason, /missing\.js:1:\d+: Could not resolve "\.\.\/lib\/does-not-exist"/);
    assert.match(err.failures[1].reason, /syntax\.js:3:0: Expected "\)" but found "}"/);
    assert.match(err.message, /^2 of 4 route file\(s\) failed to build:/);
    await fs.access(path.join(out, 'api', 'good.mjs'));
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});

test('build: extension-less imports resolve as at run time (.js, .mjs, /index.js)', async () => {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-build-'));
  try {
    const [file] = await build(path.join(fixtures, 'extless', 'pages', 'handler.js'), out);
    const srv = await listen(await loadHandler(file));
    try {
      assert.deepEqual(JSON.parse((await request(srv.port)).body), { greet: 'hello x', db: 'index.js of a directory', flavour: 'mjs' });
    } finally {
      await srv.close();
    }
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});

test('bin build: lists what it wrote, reports every failure, exits non-zero', async () => {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-build-'));
  try {
    const bin = path.join(fixtures, '..', '..', 'bin', 'apiroutes-node.js');
    const child = spawn(process.execPath, [bin, 'build', path.join(fixtures, 'broken'), '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(stdout, /good\.mjs/);
    assert.match(stdout, /also-good\.mjs/);
    assert.match(stderr, /missing\.js: .*Could not resolve/);
    assert.match(stderr, /syntax\.js: .*Expected/);
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});

test('build: the same files give the same bytes wherever the output goes (source maps name the app\'s files)', async () => {
  const shallow = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-build-'));
  const deep = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-build-'));
  try {
    const src = path.join(fixtures, 'extless', 'pages');
    const [a] = await build(src, shallow);
    const [b] = await build(src, path.join(deep, 'one', 'two', 'three'));
    assert.equal(await fs.readFile(`${a}.map`, 'utf8'), await fs.readFile(`${b}.map`, 'utf8'));
    assert.equal(await fs.readFile(a, 'utf8'), await fs.readFile(b, 'utf8'));
    const map = JSON.parse(await fs.readFile(`${a}.map`, 'utf8'));
    // Relative to the route file's own folder, where the bundle sits in the image's tree.
    assert.ok(map.sources.includes('handler.js'), JSON.stringify(map.sources));
    assert.ok(map.sources.every((/** @type {string} */ s) => !path.isAbsolute(s) && !s.includes(os.tmpdir())), JSON.stringify(map.sources));
  } finally {
    await fs.rm(shallow, { recursive: true, force: true });
    await fs.rm(deep, { recursive: true, force: true });
  }
});

test('build --shared: the route files of two trees share the modules they import (one function)', async () => {
  const app = path.join(fixtures, 'shared-app');
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-build-'));
  try {
    const written = await buildShared(['pages', 'app'], out, { base: app });
    const users = path.join(out, 'pages/api/users.mjs');
    const count = path.join(out, 'app/api/count/route.mjs');
    assert.deepEqual(written.sort(), [count, users]);
    // The store is in a chunk both bundles import, not copied into each.
    const chunks = await fs.readdir(path.join(out, '_chunks'));
    assert.ok(chunks.some((c) => c.endsWith('.mjs')), String(chunks));
    assert.ok(!(await fs.readFile(users, 'utf8')).includes('const users = []'));
    // Maps name the app's files wherever the output went.
    const map = JSON.parse(await fs.readFile(`${users}.map`, 'utf8'));
    assert.ok(map.sources.includes('users.ts'), String(map.sources));

    const srv = await listen({
      kind: 'many',
      byPattern: new Map([
        ['/api/users', await loadHandler(users)],
        ['/api/count', await loadHandler(count)],
      ]),
    });
    try {
      const added = await request(srv.port, {
        method: 'POST',
        path: '/api/users',
        headers: { 'content-type': 'application/json', 'x-apiroute-pattern': '/api/users' },
        body: '{"name":"ada"}',
      });
      assert.equal(added.status, 201);
      const read = await request(srv.port, { path: '/api/count', headers: { 'x-apiroute-pattern': '/api/count' } });
      assert.deepEqual(JSON.parse(read.body), { users: ['ada'] });
    } finally {
      await srv.close();
    }
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});
