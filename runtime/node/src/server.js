// The server loop: one handler per process (or, for a shared function, several, chosen
// by the route pattern the gateway names), a readiness answer that never calls a
// handler, a deadline per request, and draining on SIGTERM.

import http from 'node:http';
import { runAppRoute, runEdgeApi } from './app.js';
import { compressResponse } from './compress.js';
import { runPagesHandler } from './pages.js';
import { runtimeLog } from './log.js';
import { PATTERN_HEADER } from './query.js';

/**
 * Several route files served by one process (`APIROUTES_HANDLERS`): the handler of a
 * request is the one of the pattern in its `x-apiroute-pattern` header.
 * @typedef {{ kind: 'many', byPattern: Map<string, import('./load.js').LoadedHandler> }} LoadedHandlers
 */

/**
 * Parses `APIROUTES_HANDLERS`: a JSON object from route pattern (as the gateway sends it
 * in `x-apiroute-pattern`) to handler file.
 * @param {string} text
 * @returns {Map<string, string>}
 */
export function parseHandlers(text) {
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`APIROUTES_HANDLERS must be a JSON object of pattern to file: ${/** @type {Error} */ (err).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('APIROUTES_HANDLERS must be a JSON object of pattern to file, e.g. {"/api/a":"pages/api/a.mjs"}');
  }
  const map = new Map();
  for (const [pattern, file] of Object.entries(value)) {
    if (typeof file !== 'string' || file === '') throw new Error(`APIROUTES_HANDLERS: the file of ${pattern} must be a non-empty string`);
    map.set(pattern, file);
  }
  if (map.size === 0) throw new Error('APIROUTES_HANDLERS names no handler');
  return map;
}

/**
 * The handler serving `req`: the only one, or the one of its pattern header.
 * @param {import('./load.js').LoadedHandler | LoadedHandlers} loaded
 * @param {http.IncomingMessage} req
 * @returns {import('./load.js').LoadedHandler | undefined}
 */
function handlerFor(loaded, req) {
  if (loaded.kind !== 'many') return loaded;
  const pattern = req.headers[PATTERN_HEADER];
  return typeof pattern === 'string' ? loaded.byPattern.get(pattern) : undefined;
}

/**
 * @typedef {{
 *   readinessPath?: string,
 *   timeoutMs?: number,
 *   log?: (line: string) => void,
 *   basePath?: string,
 *   compress?: boolean,
 * }} ServerOptions
 */

/**
 * The path as Next hands it to a handler under next.config `basePath`: without the
 * basePath (Next strips it before routing; `req.url` and `request.url` never show it).
 * @param {string} target path and query
 * @param {string} basePath `''` or `/docs`
 */
export function stripBasePath(target, basePath) {
  if (!basePath || !target.startsWith(basePath)) return target;
  const rest = target.slice(basePath.length);
  if (rest === '') return '/';
  if (rest[0] === '?') return `/${rest}`;
  return rest[0] === '/' ? rest : target;
}

/** Default per-request deadline when neither the file (`maxDuration`) nor env set one. */
export const DEFAULT_TIMEOUT_SECONDS = 30;

/**
 * @param {import('./load.js').LoadedHandler | LoadedHandlers} loaded
 * @param {ServerOptions} [options]
 */
export function createRuntimeServer(loaded, options = {}) {
  const readinessPath = options.readinessPath ?? '/healthz';
  const log = options.log ?? ((line) => runtimeLog('warn', line));
  let draining = false;
  let inFlight = 0;
  /** @type {(() => void) | null} */
  let onIdle = null;

  /**
   * @param {http.IncomingMessage} req
   * @param {http.ServerResponse} res
   */
  const onRequest = (req, res) => {
    if (options.basePath) req.url = stripBasePath(req.url || '/', options.basePath);
    const target = req.url || '/';
    if ((req.method === 'GET' || req.method === 'HEAD') && target.split('?')[0] === readinessPath) {
      res.statusCode = draining ? 503 : 200;
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(draining ? 'draining\n' : 'ok\n');
      return;
    }
    const handler = handlerFor(loaded, req);
    if (!handler) {
      // Only the gateway calls functions, and it names a pattern of this function.
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ error: 'no handler of this function serves the route pattern', pattern: req.headers[PATTERN_HEADER] ?? null }));
      return;
    }
    const timeoutMs = options.timeoutMs ?? (handler.maxDuration ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
    inFlight++;
    if (draining) res.setHeader('connection', 'close');
    const started = Date.now();
    const timer = setTimeout(() => {
      if (res.writableEnded) return;
      log(
        `handler did not answer ${req.method} ${target} within ${timeoutMs / 1000}s (${handler.file}); ` +
          (res.headersSent ? 'closing the connection' : 'answering 504'),
      );
      if (res.headersSent) {
        res.destroy();
      } else {
        res.writeHead(504, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'handler timed out', timeoutSeconds: timeoutMs / 1000 }));
      }
    }, timeoutMs);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      inFlight--;
      if (!res.writableFinished && Date.now() - started < timeoutMs) {
        log(`client went away before ${req.method} ${target} was answered`);
      }
      if (inFlight === 0 && onIdle) onIdle();
    };
    res.once('close', done);
    // next.config `compress` (on unless false), as `next start` applies it to every answer.
    if (options.compress !== false) compressResponse(req, res);
    if (handler.kind === 'pages') {
      void runPagesHandler(handler.handler, handler.config, req, res);
    } else if (handler.kind === 'edge') {
      void runEdgeApi(handler.handler, req, res);
    } else {
      void runAppRoute(handler.module, req, res, { methods: handler.methods });
    }
  };

  const server = http.createServer({ keepAliveTimeout: 65_000 }, onRequest);

  /**
   * Stops accepting, finishes the requests in flight, then resolves.
   * @param {number} graceMs after which remaining connections are cut
   * @returns {Promise<void>}
   */
  const drain = (graceMs) =>
    new Promise((resolve) => {
      draining = true;
      /** @type {NodeJS.Timeout | undefined} */
      let deadline;
      server.close(() => {
        clearTimeout(deadline);
        resolve();
      });
      server.closeIdleConnections();
      const finish = () => {
        server.closeIdleConnections();
        if (inFlight === 0) server.closeAllConnections();
      };
      onIdle = finish;
      finish();
      deadline = setTimeout(() => {
        log(`drain deadline passed with ${inFlight} request(s) in flight; closing`);
        server.closeAllConnections();
      }, graceMs).unref();
    });

  return { server, drain, inFlight: () => inFlight };
}
