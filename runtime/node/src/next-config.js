// An app's next.config as `next build` reads it (Next.js 16.4.6 `loadConfig`): the first
// of next.config.js, .mjs, .cjs, .ts, .mts, .cts in the app folder; its default export (or
// `module.exports`) is the config object, or a function called with the phase and
// `{ defaultConfig }` whose (awaited) result is. `redirects`, `rewrites` and `headers` are
// async functions in the config; their results are awaited here too.
//
// `apiroutes deploy` needs only the parts that touch API routes: `basePath`,
// `trailingSlash`, `compress`, `pageExtensions`, and the `redirects`, `rewrites` and
// `headers` entries.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const NAMES = ['next.config.js', 'next.config.mjs', 'next.config.cjs', 'next.config.ts', 'next.config.mts', 'next.config.cts'];
const PHASE_PRODUCTION_BUILD = 'phase-production-build';

/**
 * @typedef {{ source: string, destination?: string, basePath?: false, [key: string]: unknown }} RouteEntry
 * @typedef {{
 *   file: string | null,
 *   basePath: string,
 *   trailingSlash: boolean,
 *   compress: boolean,
 *   pageExtensions: string[] | null,
 *   redirects: RouteEntry[],
 *   rewrites: RouteEntry[],
 *   headers: RouteEntry[],
 * }} NextConfigSummary
 */

/**
 * Loads the app's next.config and returns what deploy needs (defaults when there is none).
 * @param {string} dir
 * @returns {Promise<NextConfigSummary>}
 */
export async function loadNextConfig(dir) {
  let file = null;
  for (const name of NAMES) {
    const candidate = path.join(dir, name);
    if (await fs.stat(candidate).then((s) => s.isFile(), () => false)) {
      file = candidate;
      break;
    }
  }
  const summary = /** @type {NextConfigSummary} */ ({
    file: file && path.basename(file),
    basePath: '',
    trailingSlash: false,
    compress: true,
    pageExtensions: null,
    redirects: [],
    rewrites: [],
    headers: [],
  });
  if (!file) return summary;
  const module = await importConfig(file);
  let config = /** @type {any} */ (module).default ?? module;
  if (typeof config === 'function') config = await config(PHASE_PRODUCTION_BUILD, { defaultConfig: {} });
  config = await config;
  if (config === null || typeof config !== 'object') throw new Error(`${summary.file}: the config is not an object`);
  if (config.basePath !== undefined) summary.basePath = String(config.basePath);
  if (config.trailingSlash !== undefined) summary.trailingSlash = Boolean(config.trailingSlash);
  // Next compresses unless `compress` is exactly false.
  if (config.compress === false) summary.compress = false;
  if (Array.isArray(config.pageExtensions)) summary.pageExtensions = config.pageExtensions.map(String);
  for (const key of /** @type {const} */ (['redirects', 'headers'])) {
    if (typeof config[key] === 'function') summary[key] = plain(await config[key]());
  }
  if (typeof config.rewrites === 'function') {
    const rewrites = await config.rewrites();
    // An array means afterFiles; the object form has three phases.
    summary.rewrites = Array.isArray(rewrites)
      ? plain(rewrites)
      : plain([...(rewrites?.beforeFiles ?? []), ...(rewrites?.afterFiles ?? []), ...(rewrites?.fallback ?? [])]);
  }
  return summary;
}

/**
 * @param {unknown} entries
 * @returns {RouteEntry[]}
 */
function plain(entries) {
  return Array.isArray(entries) ? JSON.parse(JSON.stringify(entries)) : [];
}

/**
 * Imports a config file; TypeScript is compiled first with esbuild, as Next does with SWC.
 * @param {string} file
 */
async function importConfig(file) {
  if (!/\.[cm]?ts$/.test(file)) return import(pathToFileURL(file).href);
  const esbuild = await import('esbuild');
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'apiroutes-next-config-'));
  try {
    const out = path.join(tmp, 'next.config.mjs');
    await esbuild.build({
      entryPoints: [file],
      outfile: out,
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      logLevel: 'silent',
      banner: { js: "import { createRequire as __apiroutesCreateRequire } from 'node:module'; const require = __apiroutesCreateRequire(import.meta.url);" },
    });
    // Bare imports resolve from the app's folder, as the original would.
    const beside = path.join(path.dirname(file), `.apiroutes-next-config-${process.pid}.mjs`);
    await fs.copyFile(out, beside);
    try {
      return await import(pathToFileURL(beside).href);
    } finally {
      await fs.rm(beside, { force: true });
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
