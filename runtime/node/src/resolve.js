// Unbuilt handlers: when a file (or a file it imports) needs `next/server`, `next/headers`
// or `next/navigation` without the `next` package, or a relative import without an
// extension, the runtime installs resolution hooks (src/resolve-hooks.js). They start a
// loader thread (a noticeable part of a cold start), so only then.

import fs from 'node:fs/promises';
import { register } from 'node:module';
import path from 'node:path';

let installed = false;

const NEXT_IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]next\/(?:server|headers|navigation)(?:\.js)?['"]/;
// ESM import strings (`require()` resolves extensions by itself).
const SPECIFIERS = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"\n]+)['"]/g;
const MAX_FILES = 500;

/**
 * Whether an (unbundled) module's source imports `next/server`, `next/headers` or
 * `next/navigation`.
 * @param {string} source
 */
export function importsNextServer(source) {
  return NEXT_IMPORT.test(source);
}

/**
 * Whether serving `file` needs the hooks: it, or a local file it imports (followed up to
 * 500 files), imports a `next/*` stand-in or a relative path that is not a file as written.
 * A static scan of the import strings: a false alarm only costs the loader thread.
 * @param {string} file
 * @returns {Promise<boolean>}
 */
export async function needsResolveHooks(file) {
  const seen = new Set();
  const queue = [path.resolve(file)];
  while (queue.length && seen.size < MAX_FILES) {
    const current = /** @type {string} */ (queue.shift());
    if (seen.has(current)) continue;
    seen.add(current);
    const source = await fs.readFile(current, 'utf8').catch(() => '');
    if (importsNextServer(source)) return true;
    for (const [, specifier] of source.matchAll(SPECIFIERS)) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
      const target = path.resolve(path.dirname(current), specifier);
      const stat = await fs.stat(target).catch(() => null);
      if (!stat?.isFile()) return true;
      if (!current.includes(`${path.sep}node_modules${path.sep}`)) queue.push(target);
    }
  }
  return false;
}

export function installNextServerResolution() {
  if (installed) return;
  installed = true;
  register(new URL('./resolve-hooks.js', import.meta.url));
}
