// A stand-in for `next/headers` in app route handlers: `headers()`, `cookies()` and
// `draftMode()` return Promises, as in Next 16. `cookies()` is Next's mutable jar (a
// ResponseCookies filled with the request's cookies); what the handler sets or deletes is
// added to its response. draftMode().enable()/disable() use the gateway's preview contract.

import { RequestCookies, ResponseCookies, mutableRequestCookies } from './next-cookies.js';
import { requestStore } from './request-store.js';

/** @param {string} name */
function store(name) {
  const current = requestStore.getStore();
  if (!current) throw new Error(`\`${name}\` was called outside a request scope.`);
  return current;
}

/** @returns {never} */
function readonly() {
  throw new Error('Headers cannot be modified. Read more: https://nextjs.org/docs/app/api-reference/functions/headers');
}

/** The request headers, read-only. */
export async function headers() {
  const h = new Headers(store('headers').headers);
  return Object.assign(h, { append: readonly, set: readonly, delete: readonly });
}

/**
 * The jar of the request's cookies; `set`/`delete` also go to the response. The same
 * Promise (and jar) on every call within a request, as in Next.
 * @returns {Promise<ResponseCookies>}
 */
export function cookies() {
  const s = store('cookies');
  s.mutableCookies ??= mutableRequestCookies(new RequestCookies(s.headers));
  return (s.cookies ??= Promise.resolve(s.mutableCookies));
}

/** Draft Mode: on while the gateway says Preview Mode is on. */
export async function draftMode() {
  const s = store('draftMode');
  return {
    get isEnabled() {
      return s.draft === 'enable' || (s.preview && s.draft !== 'disable');
    },
    enable() {
      s.draft = 'enable';
    },
    disable() {
      s.draft = 'disable';
    },
  };
}

export { RequestCookies, ResponseCookies };
