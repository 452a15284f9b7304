// Module resolution hooks (run off-thread by node:module register) for unbuilt handler
// files: `next/server`, `next/headers` and `next/navigation` fall back to the runtime's
// stand-ins, and relative imports without an extension resolve as Next's bundler does.

/** @type {Record<string, string>} */
const SHIMS = {
  'next/server': new URL('./next-server.js', import.meta.url).href,
  'next/server.js': new URL('./next-server.js', import.meta.url).href,
  'next/headers': new URL('./next-headers.js', import.meta.url).href,
  'next/headers.js': new URL('./next-headers.js', import.meta.url).href,
  'next/navigation': new URL('./next-navigation.js', import.meta.url).href,
  'next/navigation.js': new URL('./next-navigation.js', import.meta.url).href,
};

/** Extensions tried for `./x`, then for `./x/index`, in this order. */
export const EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.tsx', '.jsx'];
const UNLOADABLE = /\.(ts|tsx|jsx)$/;

/**
 * @param {string} specifier
 * @param {{ parentURL?: string }} context
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
  if (!isRelative(specifier) || !context.parentURL?.startsWith('file:')) return nextResolve(specifier, context);
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const code = /** @type {{ code?: string }} */ (err).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'ERR_UNSUPPORTED_DIR_IMPORT') throw err;
    const found = await findWithExtension(new URL(specifier, context.parentURL));
    if (!found) throw err;
    if (UNLOADABLE.test(found.pathname)) {
      throw Object.assign(
        new Error(
          `${specifier} (imported from ${context.parentURL}) resolves to ${found.pathname}, which Node cannot run: compile the handler first with \`apiroutes-node build <src> --out <dir>\``,
        ),
        { code: 'ERR_UNKNOWN_FILE_EXTENSION' },
      );
    }
    return { url: found.href, shortCircuit: true };
  }
}

/** @param {string} specifier */
function isRelative(specifier) {
  return specifier.startsWith('./') || specifier.startsWith('../') || specifier === '.' || specifier === '..';
}

/**
 * `x.js`, `x.mjs`, … then `x/index.js`, … : the first regular file.
 * @param {URL} base
 * @returns {Promise<URL | null>}
 */
async function findWithExtension(base) {
  const { stat } = await import('node:fs/promises');
  const href = base.href.replace(/\/$/, '');
  for (const candidate of [...EXTENSIONS.map((ext) => href + ext), ...EXTENSIONS.map((ext) => `${href}/index${ext}`)]) {
    const url = new URL(candidate);
    const s = await stat(url).catch(() => null);
    if (s?.isFile()) return url;
  }
  return null;
}
