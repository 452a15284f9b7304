// `apiroutes-node build`: compiles handler files (TypeScript, ESM, CommonJS) ahead of
// deploy time with esbuild, one self-contained ESM file per route file, so that the
// runtime never compiles at request time.

import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = /\.(ts|tsx|mts|cts|js|jsx|mjs|cjs)$/;
const SKIP = /(\.d\.ts|\.test\.[cm]?[jt]sx?)$/;
// App Router UI files sit beside route files in an `app` tree; they are not functions.
const APP_UI = /^(page|layout|template|loading|error|global-error|not-found|default)\.[cm]?[jt]sx?$/;
const NEXT_SERVER_SHIM = fileURLToPath(new URL('./next-server.js', import.meta.url));
const NEXT_HEADERS_SHIM = fileURLToPath(new URL('./next-headers.js', import.meta.url));
const NEXT_NAVIGATION_SHIM = fileURLToPath(new URL('./next-navigation.js', import.meta.url));
const RUNTIME_SRC = fileURLToPath(new URL('.', import.meta.url));
// Relative imports without an extension: as the runtime resolves them (src/resolve-hooks.js).
const RESOLVE_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.tsx', '.jsx', '.json'];

/** Some route files failed to build; the others were written. */
export class BuildError extends Error {
  /**
   * @param {string[]} written
   * @param {{ file: string, reason: string }[]} failures
   */
  constructor(written, failures) {
    super(
      `${failures.length} of ${written.length + failures.length} route file(s) failed to build:\n` +
        failures.map((f) => `  ${f.file}: ${f.reason.replace(/\n/g, '\n    ')}`).join('\n'),
    );
    this.written = written;
    this.failures = failures;
  }
}

/**
 * esbuild's errors as `file:line:column: text` lines.
 * @param {unknown} err
 * @returns {string}
 */
function reasonOf(err) {
  const errors = /** @type {{ errors?: { text: string, location?: { file: string, line: number, column: number } | null }[] }} */ (err).errors;
  if (Array.isArray(errors) && errors.length) {
    return errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text)).join('\n');
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whether a file belongs to an App Router tree (an `app` folder, not under `pages`).
 * @param {string} root
 * @param {string} file
 */
function inAppTree(root, file) {
  const parts = path.relative(path.dirname(path.resolve(root)), path.resolve(file)).split(path.sep);
  return parts.includes('app') && !parts.includes('pages');
}

/**
 * Route files under `src` (a file or a directory), skipping `node_modules`, `_`-prefixed
 * private folders and declarations.
 * @param {string} src
 * @returns {Promise<{ root: string, files: string[] }>}
 */
export async function findSources(src) {
  const stat = await fs.stat(src);
  if (stat.isFile()) return { root: path.dirname(src), files: [src] };
  /** @type {string[]} */
  const files = [];
  /** @param {string} dir */
  const walk = async (dir) => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name === 'node_modules' || entry.name.startsWith('_') || entry.name.startsWith('.')) continue;
        await walk(full);
      } else if (SOURCE.test(entry.name) && !SKIP.test(entry.name) && !(APP_UI.test(entry.name) && inAppTree(src, full))) {
        files.push(full);
      }
    }
  };
  await walk(src);
  return { root: src, files: files.sort() };
}

/**
 * Bundles each route file into `outDir`, keeping its relative path with a `.mjs` suffix
 * (`pages/api/users/[id].ts` → `<out>/pages/api/users/[id].mjs`). Every file is tried;
 * when some fail, a {@link BuildError} listing each with its reason is thrown at the end.
 * @param {string} src file or directory
 * @param {string} outDir
 * @param {{ minify?: boolean, external?: string[] }} [options]
 * @returns {Promise<string[]>} written files
 */
export async function build(src, outDir, options = {}) {
  const esbuild = await import('esbuild');
  const { root, files } = await findSources(src);
  /** @type {string[]} */
  const written = [];
  /** @type {{ file: string, reason: string }[]} */
  const failures = [];
  for (const file of files) {
    const rel = path.relative(root, file).replace(SOURCE, '.mjs');
    const outfile = path.join(outDir, rel);
    try {
      await esbuildOne(esbuild, file, outfile, options);
      written.push(outfile);
    } catch (err) {
      failures.push({ file, reason: reasonOf(err) });
    }
  }
  if (failures.length) throw new BuildError(written, failures);
  return written;
}

/**
 * Bundles the route files of every tree in `srcs` together, for a function that serves
 * them all in one process (`apiroutes deploy --group`): modules two route files import
 * go into shared chunks (`_chunks/` in `outDir`), loaded once, so the route files share
 * their state as under `next start`. Each tree is a path relative to the working
 * directory (the app root) and its files land in `outDir` under that same path
 * (`pages/api/a.ts` → `<out>/pages/api/a.mjs`), as {@link build} of each tree into
 * `<out>/<tree>` would place them. One esbuild run: when it fails, every error is listed
 * with its file.
 * @param {string[]} srcs
 * @param {string} outDir
 * @param {{ minify?: boolean, external?: string[], base?: string }} [options] `base`: the
 *   app root the trees are relative to (default: the working directory)
 * @returns {Promise<string[]>} written route bundles
 */
export async function buildShared(srcs, outDir, options = {}) {
  const esbuild = await import('esbuild');
  const base = path.resolve(options.base ?? process.cwd());
  srcs = srcs.map((src) => path.resolve(base, src));
  /** @type {{ in: string, out: string }[]} */
  const entries = [];
  for (const src of srcs) {
    const { files } = await findSources(src);
    for (const file of files) entries.push({ in: file, out: path.relative(base, file).replace(SOURCE, '') });
  }
  /** @type {import('esbuild').BuildResult & { metafile: import('esbuild').Metafile }} */
  let result;
  try {
    result = await esbuild.build({
      ...esbuildOptions(options),
      entryPoints: entries,
      outdir: outDir,
      splitting: true,
      chunkNames: '_chunks/[name]-[hash]',
      outExtension: { '.js': '.mjs' },
      metafile: true,
    });
  } catch (err) {
    const errors = /** @type {{ errors?: { text: string, location?: { file: string, line: number, column: number } | null }[] }} */ (err).errors;
    const failures = Array.isArray(errors) && errors.length
      ? errors.map((e) => ({ file: e.location?.file ?? srcs.join(', '), reason: e.location ? `${e.location.line}:${e.location.column}: ${e.text}` : e.text }))
      : [{ file: srcs.join(', '), reason: reasonOf(err) }];
    throw new BuildError([], failures);
  }
  warn(result.warnings);
  const written = entries.map((e) => path.join(outDir, `${e.out}.mjs`));
  for (const output of Object.keys(result.metafile.outputs)) {
    if (!output.endsWith('.mjs')) continue;
    const outfile = path.resolve(output);
    const entry = entries.find((e) => path.resolve(outDir, `${e.out}.mjs`) === outfile);
    // A chunk stands where it would sit in the app (`<root>/_chunks/...`).
    const as = entry ? entry.in : path.join(base, path.relative(outDir, outfile));
    await relocateSourceMap(as, outfile);
  }
  return written;
}

/**
 * What every esbuild run of route files shares.
 * @param {{ minify?: boolean, external?: string[] }} options
 */
function esbuildOptions(options) {
  return {
    bundle: true,
    platform: /** @type {const} */ ('node'),
    format: /** @type {const} */ ('esm'),
    target: 'node20',
    sourcemap: /** @type {const} */ ('linked'),
    minify: options.minify ?? false,
    external: options.external ?? [],
    alias: { 'next/server': NEXT_SERVER_SHIM, 'next/headers': NEXT_HEADERS_SHIM, 'next/navigation': NEXT_NAVIGATION_SHIM },
    resolveExtensions: RESOLVE_EXTENSIONS,
    // Bundled CommonJS dependencies may call require(); give ESM output one.
    banner: { js: "import { createRequire as __apiroutesCreateRequire } from 'node:module'; const require = __apiroutesCreateRequire(import.meta.url);" },
    logLevel: /** @type {const} */ ('silent'),
  };
}

/** @param {import('esbuild').Message[]} warnings */
function warn(warnings) {
  for (const w of warnings) {
    console.warn(`warning: ${w.location ? `${w.location.file}:${w.location.line}:${w.location.column}: ` : ''}${w.text}`);
  }
}

/**
 * @param {typeof import('esbuild')} esbuild
 * @param {string} file
 * @param {string} outfile
 * @param {{ minify?: boolean, external?: string[] }} options
 */
async function esbuildOne(esbuild, file, outfile, options) {
  const result = await esbuild.build({ ...esbuildOptions(options), entryPoints: [file], outfile });
  warn(result.warnings);
  await relocateSourceMap(file, outfile);
}

/**
 * esbuild writes the map's `sources` relative to where the output was written, a
 * temporary folder whose depth differs from one build to the next, so the same app would
 * give different bytes. Rewrite them relative to the route file's own folder: the bundle
 * sits at the same place in the image's tree as the route file in the app, so the
 * sources still resolve there (`hello.js`, `../../lib/db.js`), and the bytes no longer
 * depend on the build machine.
 * @param {string} file the route file
 * @param {string} outfile its bundle
 */
async function relocateSourceMap(file, outfile) {
  const mapFile = `${outfile}.map`;
  /** @type {{ sources?: string[] }} */
  let map;
  try {
    map = JSON.parse(await fs.readFile(mapFile, 'utf8'));
  } catch {
    return;
  }
  if (!Array.isArray(map.sources)) return;
  const from = path.dirname(path.resolve(file));
  map.sources = map.sources.map((s) => {
    const abs = path.resolve(path.dirname(outfile), s);
    // The runtime's own shims (next/server, ...) are named by the runtime, wherever it is.
    const inRuntime = path.relative(RUNTIME_SRC, abs);
    if (!inRuntime.startsWith('..') && !path.isAbsolute(inRuntime)) return `apiroutes-node:src/${inRuntime.split(path.sep).join('/')}`;
    return path.relative(from, abs).split(path.sep).join('/');
  });
  await fs.writeFile(mapFile, JSON.stringify(map, null, 2) + '\n');
}
