// Loading one handler file: a pages/api module (default export `handler(req, res)`) or an
// App Router route module (named exports GET, POST, ...). ESM and CommonJS load as they
// are; TypeScript must be compiled first (`apiroutes-node build`).

import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { HTTP_METHODS, implementMethods } from './app.js';

const TYPESCRIPT = /\.(ts|tsx|mts|cts)$/;

/**
 * @typedef {{
 *   kind: 'pages',
 *   file: string,
 *   handler: import('./pages.js').PagesHandler,
 *   config: import('./pages.js').PageConfig,
 *   maxDuration: number | undefined,
 * } | {
 *   kind: 'edge',
 *   file: string,
 *   handler: (request: Request, event: { waitUntil(p: Promise<unknown>): void }) => unknown,
 *   maxDuration: number | undefined,
 * } | {
 *   kind: 'app',
 *   file: string,
 *   module: import('./app.js').RouteModule,
 *   methods: Record<string, import('./app.js').RouteHandler>,
 *   exported: string[],
 *   maxDuration: number | undefined,
 * }} LoadedHandler
 */

/**
 * Next's `interopDefault`, one level deeper for CommonJS `exports.default`.
 * @param {Record<string, any>} ns
 * @returns {any}
 */
function defaultExport(ns) {
  let value = ns.default;
  if (value && typeof value === 'object' && 'default' in value) value = value.default;
  return value;
}

/**
 * Classifies a loaded module namespace.
 * @param {string} file
 * @param {Record<string, any>} ns
 * @returns {LoadedHandler}
 */
export function classifyModule(file, ns) {
  const cjs = ns.default && typeof ns.default === 'object' ? ns.default : {};
  /** @param {string} name */
  const named = (name) => (name in ns ? ns[name] : cjs[name]);
  const maxDuration = typeof named('maxDuration') === 'number' ? named('maxDuration') : undefined;
  const handler = defaultExport(ns);
  if (typeof handler === 'function') {
    const config = ns.config ?? handler.config ?? cjs.config ?? {};
    // An Edge API route (Web Request → Response), which we run on Node.
    if (config.runtime === 'edge' || config.runtime === 'experimental-edge') {
      return { kind: 'edge', file, handler, maxDuration };
    }
    return { kind: 'pages', file, handler, config, maxDuration };
  }
  /** @type {import('./app.js').RouteModule} */
  const mod = {};
  for (const method of HTTP_METHODS) {
    if (typeof named(method) === 'function') mod[method] = named(method);
  }
  const exported = Object.keys(mod);
  if (exported.length === 0) {
    throw new Error(
      `${file} exports neither a default handler(req, res) (pages/api) nor an HTTP method function (app route.js)`,
    );
  }
  return { kind: 'app', file, module: mod, methods: implementMethods(mod), exported, maxDuration };
}

/**
 * @param {string} file path to the handler file
 * @returns {Promise<LoadedHandler>}
 */
export async function loadHandler(file) {
  const absolute = path.resolve(file);
  if (TYPESCRIPT.test(absolute)) {
    throw new Error(
      `${file} is TypeScript: compile it first with \`apiroutes-node build <src> --out <dir>\` (the runtime never compiles at request time)`,
    );
  }
  const ns = await import(pathToFileURL(absolute).href);
  return classifyModule(file, ns);
}
