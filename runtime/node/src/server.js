// The server loop: one handler per process, a readiness answer that never calls the
// handler, a deadline per request, and draining on SIGTERM.

import http from 'node:http';
import { runAppRoute, runEdgeApi } from './app.js';
import { runPagesHandler } from './pages.js';
import { runtimeLog } from './log.js';

/**
 * @typedef {{
 *   readinessPath?: string,
 *   timeoutMs?: number,
 *   log?: (line: string) => void,
 *   basePath?: string,
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
 * @param {import('./load.js').LoadedHandler} loaded
 * @param {ServerOptions} [options]
 */
export function createRuntimeServer(loaded, options = {}) {
  const readinessPath = options.readinessPath ?? '/healthz';
  const timeoutMs = options.timeoutMs ?? (loaded.maxDuration ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
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
    inFlight++;
    if (draining) res.setHeader('connection', 'close');
    const started = Date.now();
    const timer = setTimeout(() => {
      if (res.writableEnded) return;
      log(
        `handler did not answer ${req.method} ${target} within ${timeoutMs / 1000}s (${loaded.file}); ` +
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
    if (loaded.kind === 'pages') {
      void runPagesHandler(loaded.handler, loaded.config, req, res);
    } else if (loaded.kind === 'edge') {
      void runEdgeApi(loaded.handler, req, res);
    } else {
      void runAppRoute(loaded.module, req, res, { methods: loaded.methods });
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
