// Command line: serve one handler file, or build a handler tree.

import { readFile } from 'node:fs/promises';
import { BuildError, build } from './build.js';
import { loadEnvConfig } from './dotenv.js';
import { runtimeLog } from './log.js';
import { loadHandler } from './load.js';
import { loadNextConfig } from './next-config.js';
import { declaresEdgeRuntime, defineNextGlobals } from './next-globals.js';
import { createRuntimeServer } from './server.js';
import { installNextServerResolution, needsResolveHooks } from './resolve.js';

const USAGE = `usage:
  apiroutes-node <handler-file>            serve one route file (or env APIROUTES_HANDLER)
  apiroutes-node build <src> --out <dir>   compile route files (TS, ESM, CJS) with esbuild
  apiroutes-node env <app-dir> [--local]   print the variables of the app's .env, .env.production
                                           (and .local files with --local) as JSON, expanded
                                           as next start does, without the process environment
  apiroutes-node config <app-dir>          print what apiroutes uses of the app's next.config
                                           (basePath, trailingSlash, pageExtensions, redirects,
                                           rewrites, headers) as JSON

environment: HOST (0.0.0.0), PORT (3000), APIROUTES_READINESS_PATH (/healthz),
  APIROUTES_TIMEOUT_SECONDS (the file's maxDuration, else 30), APIROUTES_DRAIN_SECONDS (30),
  APIROUTES_BASE_PATH (next.config basePath, stripped from the URL handlers see),
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
    try {
      const written = await build(src, out, { minify: argv.includes('--minify') });
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
  const file = argv[0] ?? env.APIROUTES_HANDLER;
  if (!file) throw new Error(`no handler file given\n${USAGE}`);
  await serve(file, env);
}

/**
 * @param {string} file
 * @param {NodeJS.ProcessEnv} env
 */
export async function serve(file, env) {
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
  const edge = declaresEdgeRuntime(await readFile(file, 'utf8').catch(() => ''));
  defineNextGlobals({ host, port, edge, env: process.env });
  if (await needsResolveHooks(file)) installNextServerResolution();
  const loaded = await loadHandler(file);
  const { server, drain } = createRuntimeServer(loaded, {
    readinessPath: env.APIROUTES_READINESS_PATH || '/healthz',
    timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
    basePath: env.APIROUTES_BASE_PATH || '',
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
  const what = loaded.kind === 'pages' ? 'pages/api handler' : loaded.kind === 'edge' ? 'edge API route' : `app route (${loaded.exported.join(', ')})`;
  runtimeLog('info', `serving ${what} ${file} on ${where}`, { file, address: where });
}
