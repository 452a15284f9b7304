// A stand-in for `next/headers` in app route handlers: `headers()`, `cookies()` and
// `draftMode()` return Promises, as in Next 16. Cookies set here are appended to the
// handler's response; draftMode().enable()/disable() use the gateway's preview contract.

import { RequestCookies, ResponseCookies } from './next-server.js';
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

/** The request cookies; `set`/`delete` also go to the response, as in a Next route handler. */
export async function cookies() {
  const s = store('cookies');
  const view = s.cookies;
  return {
    get: view.get.bind(view),
    getAll: view.getAll.bind(view),
    has: view.has.bind(view),
    get size() {
      return view.size;
    },
    toString: view.toString.bind(view),
    /** @param {Parameters<ResponseCookies['set']>} args */
    set(...args) {
      s.responseCookies.set(...args);
      const name = typeof args[0] === 'string' ? args[0] : args[0].name;
      const value = typeof args[0] === 'string' ? (args[1] ?? '') : args[0].value;
      view._parsed.set(name, { name, value });
      return this;
    },
    /** @param {string} name */
    delete(name) {
      s.responseCookies.delete(name);
      view._parsed.delete(name);
      return this;
    },
  };
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
