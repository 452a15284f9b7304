// Per-request state for `next/headers` (cookies(), headers(), draftMode()) and
// `next/navigation` in app routes. Kept on globalThis so that a copy of the stand-ins
// bundled into a handler file shares it.

import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * @typedef {{
 *   headers: Headers,
 *   mutableCookies?: import('./next-cookies.js').ResponseCookies,
 *   cookies?: Promise<import('./next-cookies.js').ResponseCookies>,
 *   preview: boolean,
 *   draft: 'enable' | 'disable' | null,
 *   isAction: boolean,
 * }} RequestStore
 */

const KEY = Symbol.for('apiroutes.requestStore');
const holder = /** @type {Record<symbol, AsyncLocalStorage<RequestStore> | undefined>} */ (/** @type {unknown} */ (globalThis));

/** @type {AsyncLocalStorage<RequestStore>} */
export const requestStore = (holder[KEY] ??= new AsyncLocalStorage());
