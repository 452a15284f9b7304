// Module resolution hooks (run off-thread by node:module register).

/** @type {Record<string, string>} */
const SHIMS = {
  'next/server': new URL('./next-server.js', import.meta.url).href,
  'next/server.js': new URL('./next-server.js', import.meta.url).href,
  'next/headers': new URL('./next-headers.js', import.meta.url).href,
  'next/headers.js': new URL('./next-headers.js', import.meta.url).href,
};

/**
 * @param {string} specifier
 * @param {object} context
 * @param {(specifier: string, context: object) => Promise<{ url: string }>} nextResolve
 */
export async function resolve(specifier, context, nextResolve) {
  const shim = SHIMS[specifier];
  if (shim) {
    try {
      return await nextResolve(specifier, context);
    } catch {
      return { url: shim, shortCircuit: true };
    }
  }
  return nextResolve(specifier, context);
}
