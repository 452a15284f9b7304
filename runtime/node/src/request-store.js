// Per-request state for `next/headers` (cookies(), headers(), draftMode()) in app routes.
// Kept on globalThis so that a copy of the stand-in bundled into a handler file shares it.

import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * @typedef {{
 *   headers: Headers,
 *   cookies: import('./next-server.js').RequestCookies,
 *   responseCookies: import('./next-server.js').ResponseCookies,
 *   preview: boolean,
 *   draft: 'enable' | 'disable' | null,
 * }} RequestStore
 */

const KEY = Symbol.for('apiroutes.requestStore');
const holder = /** @type {Record<symbol, AsyncLocalStorage<RequestStore> | undefined>} */ (/** @type {unknown} */ (globalThis));

/** @type {AsyncLocalStorage<RequestStore>} */
export const requestStore = (holder[KEY] ??= new AsyncLocalStorage());
