// The process-wide markers `next start` (Next.js 16.4.6) defines and libraries read to
// detect Next.js, set before the handler file is loaded so that its imports take the same
// code path as under `next start`.
//
// Not defined, on purpose (see README, deliberate differences): Turbopack's runtime
// (`TURBOPACK`, `__next__clear_chunk_cache__`, env `TURBOPACK=1`; handlers here are
// bundled by esbuild) and Next's own AsyncLocalStorage singletons
// (`Symbol.for('@next/…-async-storage@16.4.6')` and friends; the runtime's stand-ins keep
// their own state, and code finding these would call Next internals that are not there).

import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

const EDGE_CONFIG = /\bruntime\s*:\s*['"](?:experimental-)?edge['"]/;

/**
 * Whether a route file's source declares an Edge API route (`config.runtime = 'edge'`),
 * read before the file is loaded so that its imports see the edge markers.
 * @param {string} source
 */
export function declaresEdgeRuntime(source) {
  return EDGE_CONFIG.test(source);
}

/**
 * @param {{ host: string, port: number, edge?: boolean, env?: NodeJS.ProcessEnv, now?: number }} options
 *   `edge`: the file is an Edge API route, which Next runs in its edge sandbox
 */
export function defineNextGlobals({ host, port, edge = false, env = process.env, now = Date.now() }) {
  const g = /** @type {Record<string, unknown>} */ (globalThis);
  // Next's server defines it for its own code and React's; libraries look for it too.
  if (typeof g.AsyncLocalStorage !== 'function') g.AsyncLocalStorage = AsyncLocalStorage;
  env.NEXT_RUNTIME = edge ? 'edge' : 'nodejs';
  // `next start`'s deployment id (next.config `deploymentId`), '' when none.
  env.NEXT_DEPLOYMENT_ID ??= '';
  env.NEXT_PRIVATE_START_TIME = String(now);
  // Next's own origin: its listen address, with 0.0.0.0 shown as localhost.
  const hostname = !host || host === '0.0.0.0' ? 'localhost' : host === '::' ? '[::1]' : net.isIPv6(host) ? `[${host}]` : host;
  env.__NEXT_PRIVATE_ORIGIN = `http://${hostname}:${port}`;
  if (edge) {
    // The edge sandbox's marker; its other globals are Node's here (README).
    if (!('EdgeRuntime' in g)) Object.defineProperty(g, 'EdgeRuntime', { value: 'edge-runtime', writable: true });
    return;
  }
  g.NEXT_CLIENT_ASSET_SUFFIX = '';
  // next.config `httpAgentOptions` (default keepAlive), used by Next's fetch and by libraries.
  if (!g.__NEXT_HTTP_AGENT) {
    const options = { keepAlive: true };
    g.__NEXT_HTTP_AGENT_OPTIONS = options;
    g.__NEXT_HTTP_AGENT = new http.Agent(options);
    g.__NEXT_HTTPS_AGENT = new https.Agent(options);
  }
  // Process error handlers are installed (cli.js): errors are logged, the process serves on.
  g.nextInitializedProcessErrorHandlers = true;
}
