// Command line: serve one handler file, or build a handler tree.

import { readFile } from 'node:fs/promises';
import { BuildError, build, buildShared } from './build.js';
import { loadEnvConfig } from './dotenv.js';
import { runtimeLog } from './log.js';
import { loadHandler } from './load.js';
import { loadNextConfig } from './next-config.js';
import { declaresEdgeRuntime, defineNextGlobals } from './next-globals.js';
import { createRuntimeServer, parseHandlers } from './server.js';
import { installNextServerResolution, needsResolveHooks } from './resolve.js';

const USAGE = `usage:
  apiroutes-node <handler-file>            serve one route file (or env APIROUTES_HANDLER)
  apiroutes-node                           with env APIROUTES_HANDLERS='{"<pattern>":"<file>",...}':
                                           serve several route files in one process, each
                                           request by its x-apiroute-pattern header
  apiroutes-node build <src> --out <dir>   compile route files (TS, ESM, CJS) with esbuild
  apiroutes-node build <tree>... --out <dir> --shared
                                           the same for one function serving all the trees'
                                           route files: modules they share are bundled once
                                           (in <dir>/_chunks), so the files share their state
  apiroutes-node env <app-dir> [--local]   print the variables of the app's .env, .env.production
                                           (and .local files with --local) as JSON, expanded
                                           as next start does, without the process environment
  apiroutes-node config <app-dir>          print what apiroutes uses of the app's next.config
                                           (basePath, trailingSlash, compress, pageExtensions,
                                           redirects, rewrites, headers) as JSON

environment: HOST (0.0.0.0), PORT (3000), APIROUTES_READINESS_PATH (/healthz),
  APIROUTES_TIMEOUT_SECONDS (the file's maxDuration, else 30), APIROUTES_DRAIN_SECONDS (30),
  APIROUTES_BASE_PATH (next.config basePath, stripped from the URL handlers see),
  APIROUTES_COMPRESS (false: next.config compress: false, no gzip of answers; else on, as in Next),
  APIROUTES_APP_DIR (load its .env, .env.production, .env.local, .env.production.local as next start does),
  APIROUTES_LOG_FORMAT (json: the runtime's own lines as JSON on stdout, the default off a terminal; text)`;

/**
 * @param {string | undefined} value
 * @param {string} name
 * @returns {number | undefined}
 */
function positiveNumber(value, name) {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} [env]
 */
export async function main(argv, env = process.env) {
  if (argv[0] === '-h' || argv[0] === '--help') {
    console.log(USAGE);
    return;
  }
  if (argv[0] === 'build') {
    const outIndex = argv.indexOf('--out');
    const src = argv[1];
    const out = outIndex > 0 ? argv[outIndex + 1] : undefined;
    if (!src || src === '--out' || !out) throw new Error(`build needs a source and --out\n${USAGE}`);
    const options = { minify: argv.includes('--minify') };
    // Every argument that is no flag and not the --out folder is a tree.
    const srcs = argv.filter((a, i) => i > 0 && i !== outIndex + 1 && !a.startsWith('--'));
    try {
      const written = argv.includes('--shared') ? await buildShared(srcs, out, options) : await build(src, out, options);
      for (const file of written) console.log(file);
    } catch (err) {
      if (!(err instanceof BuildError)) throw err;
      for (const file of err.written) console.log(file);
      throw err;
    }
    return;
  }
  if (argv[0] === 'env') {
    const dir = argv[1];
    if (!dir || dir.startsWith('--')) throw new Error(`env needs an app directory\n${USAGE}`);
    // Expanded against nothing but the files: the build machine's environment is not the
    // function's, and must not leak into what is deployed.
    const { loaded, parsed } = loadEnvConfig(dir, {
      env: { NODE_ENV: 'production' },
      local: argv.includes('--local'),
      log: (line) => console.error(line),
    });
    console.log(JSON.stringify({ loaded, variables: parsed }));
    return;
  }
  if (argv[0] === 'config') {
    const dir = argv[1];
    if (!dir || dir.startsWith('--')) throw new Error(`config needs an app directory\n${USAGE}`);
    console.log(JSON.stringify(await loadNextConfig(dir)));
    return;
  }
  if (argv[0] === undefined && env.APIROUTES_HANDLERS) {
    await serve(parseHandlers(env.APIROUTES_HANDLERS), env);
    return;
  }
  const file = argv[0] ?? env.APIROUTES_HANDLER;
  if (!file) throw new Error(`no handler file given\n${USAGE}`);
  await serve(file, env);
}

/**
 * @param {string | Map<string, string>} what one handler file, or pattern → file for a
 *   shared function (`APIROUTES_HANDLERS`)
 * @param {NodeJS.ProcessEnv} env
 */
export async function serve(what, env) {
  const files = typeof what === 'string' ? [what] : [...new Set(what.values())];
  const file = files.join(', ');
  const host = env.HOST || '0.0.0.0';
  const port = Number(env.PORT || 3000);
  const timeoutSeconds = positiveNumber(env.APIROUTES_TIMEOUT_SECONDS, 'APIROUTES_TIMEOUT_SECONDS');
  const drainSeconds = positiveNumber(env.APIROUTES_DRAIN_SECONDS, 'APIROUTES_DRAIN_SECONDS') ?? 30;
  process.env.NODE_ENV ??= 'production';
  // Before the handler file loads (its imports may read them at the top level).
  if (env.APIROUTES_APP_DIR) {
    const { loaded } = loadEnvConfig(env.APIROUTES_APP_DIR, { env: process.env, log: (line) => runtimeLog('info', line) });
    if (loaded.length) runtimeLog('info', `environments: ${loaded.join(', ')} (${env.APIROUTES_APP_DIR})`, { files: loaded });
  }
  // The process globals are the process's: edge ones only when every file is an edge route.
  const sources = await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => '')));
  const edge = sources.every((source) => declaresEdgeRuntime(source));
  defineNextGlobals({ host, port, edge, env: process.env });
  for (const f of files) {
    if (await needsResolveHooks(f)) {
      installNextServerResolution();
      break;
    }
  }
  /** @type {import('./load.js').LoadedHandler | import('./server.js').LoadedHandlers} */
  let loaded;
  if (typeof what === 'string') {
    loaded = await loadHandler(what);
  } else {
    // One module instance per file, loaded once: handlers of the function share the
    // modules they import (and their state), as under next start.
    const byFile = new Map();
    for (const f of files) byFile.set(f, await loadHandler(f));
    loaded = { kind: 'many', byPattern: new Map([...what].map(([pattern, f]) => [pattern, byFile.get(f)])) };
  }
  const { server, drain } = createRuntimeServer(loaded, {
    readinessPath: env.APIROUTES_READINESS_PATH || '/healthz',
    timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
    basePath: env.APIROUTES_BASE_PATH || '',
    compress: env.APIROUTES_COMPRESS !== 'false',
  });
  // As `next start` does: a stray error in a handler's background work is logged, and the
  // process keeps serving.
  process.on('uncaughtException', (err) => console.error(err));
  process.on('unhandledRejection', (err) => console.error(err));
  let stopping = false;
  const stop = (/** @type {string} */ signal) => {
    if (stopping) return;
    stopping = true;
    runtimeLog('info', `${signal}: draining`, { signal });
    drain(drainSeconds * 1000).then(() => {
      runtimeLog('info', 'drained; exiting');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(undefined));
  });
  const address = server.address();
  const where = typeof address === 'object' && address ? `${address.address}:${address.port}` : String(address);
  const kind =
    loaded.kind === 'many'
      ? `${loaded.byPattern.size} routes`
      : loaded.kind === 'pages'
        ? 'pages/api handler'
        : loaded.kind === 'edge'
          ? 'edge API route'
          : `app route (${loaded.exported.join(', ')})`;
  runtimeLog('info', `serving ${kind} ${file} on ${where}`, { file, address: where });
}
