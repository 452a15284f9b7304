// What a handler sees of the process-wide markers that libraries use to detect Next.js.
const env = process.env;
const NAMES = /next|turbopack|vercel/i;
// Values that depend on the process (start time, port), compared by presence only.
const VOLATILE = new Set(['NEXT_PRIVATE_START_TIME', '__NEXT_PRIVATE_ORIGIN', 'PORT']);

export function probeGlobals() {
  const envKeys = Object.keys(env).filter((k) => NAMES.test(k)).sort();
  /** @type {Record<string, string>} */
  const values = {};
  for (const k of envKeys) values[k] = VOLATILE.has(k) ? `<${typeof env[k]}>` : env[k];
  const globalKeys = Reflect.ownKeys(globalThis)
    .map(String)
    .filter((k) => NAMES.test(k))
    .sort();
  /** @type {Record<string, string>} */
  const globals = {};
  for (const k of globalKeys) {
    const v = globalThis[/** @type {any} */ (k)];
    globals[k] = v === null || typeof v !== 'object' && typeof v !== 'function' ? `${typeof v}:${String(v)}` : typeof v;
  }
  return {
    env: values,
    globals,
    nodeEnv: env.NODE_ENV ?? null,
    nextRuntime: env['NEXT_' + 'RUNTIME'] ?? null,
    nextRuntimeInlined: process.env.NEXT_RUNTIME ?? null,
    edgeRuntime: typeof globalThis.EdgeRuntime,
    asyncLocalStorage: typeof globalThis.AsyncLocalStorage,
  };
}
