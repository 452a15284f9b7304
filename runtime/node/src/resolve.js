// Lets unbundled handlers import `next/server` and `next/headers` without the `next`
// package: when they cannot be resolved from the handler, our stand-ins are used.

import { register } from 'node:module';

let installed = false;

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]next\/(?:server|headers)(?:\.js)?['"]/;

/**
 * Whether an (unbundled) module's source imports `next/server` or `next/headers`. Registering the hook
 * starts a loader thread (a noticeable part of a cold start), so it is done only then.
 * @param {string} source
 */
export function importsNextServer(source) {
  return IMPORT.test(source);
}

export function installNextServerResolution() {
  if (installed) return;
  installed = true;
  register(new URL('./resolve-hooks.js', import.meta.url));
}
