// An App Router `route.js` file (exports GET, POST, ...): Web Request in, Response out,
// with Next.js's automatic HEAD and OPTIONS, 405 and 400 answers. Also Edge API routes
// (`pages/api` files with `config.runtime = 'edge'`), which share the Web plumbing.

import { Readable } from 'node:stream';
import { NextRequest } from './next-server.js';
import { appendMutableCookies, splitCookiesString } from './next-cookies.js';
import { navigationAnswer } from './next-navigation.js';
import { PREVIEW_CLEAR_HEADER, PREVIEW_SET_HEADER, clearPreviewCookies, encodePreviewClear, encodePreviewSet } from './preview.js';
import { normalizeUrl } from './query.js';
import { requestStore } from './request-store.js';
import { takeGatewayHeaders } from './contract.js';

// Headers of a handler's Response that Next does not pass on (its `sendResponse`): the
// framing is Node's, and a Content-Length would contradict a HEAD answer or a streamed body.
const DROPPED_RESPONSE_HEADERS = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'x-middleware-set-cookie']);

export const HTTP_METHODS = /** @type {const} */ (['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'DELETE', 'PATCH']);

/**
 * @typedef {(request: Request, context: { params: Promise<Record<string, string | string[]>> | undefined }) => unknown} RouteHandler
 * @typedef {Partial<Record<typeof HTTP_METHODS[number], RouteHandler>>} RouteModule
 */

/**
 * The handler per method, with HEAD falling back to GET, an automatic OPTIONS (204 with
 * the sorted `Allow` list) and 405 for the rest.
 * @param {RouteModule} mod
 * @returns {Record<typeof HTTP_METHODS[number], RouteHandler>}
 */
export function implementMethods(mod) {
  const notAllowed = () => new Response(null, { status: 405 });
  const methods = /** @type {Record<typeof HTTP_METHODS[number], RouteHandler>} */ ({});
  for (const method of HTTP_METHODS) methods[method] = mod[method] ?? notAllowed;
  const implemented = new Set(HTTP_METHODS.filter((m) => mod[m]));
  if (!implemented.has('HEAD') && mod.GET) {
    methods.HEAD = mod.GET;
    implemented.add('HEAD');
  }
  if (!implemented.has('OPTIONS')) {
    const allow = ['OPTIONS', ...implemented].sort().join(', ');
    methods.OPTIONS = () => new Response(null, { status: 204, headers: { Allow: allow } });
  }
  return methods;
}

/**
 * The absolute request URL a handler sees: scheme from X-Forwarded-Proto, authority from
 * X-Forwarded-Host (set by the gateway) or Host.
 * @param {import('node:http').IncomingMessage} req
 * @param {string} [target] path and query; default `req.url`
 * @returns {string}
 */
export function requestUrl(req, target = req.url || '/') {
  const proto = String(req.headers['x-forwarded-proto'] || '').includes('https') ? 'https' : 'http';
  const forwardedHost = req.headers['x-forwarded-host'];
  const host = (typeof forwardedHost === 'string' && forwardedHost.split(',')[0].trim()) || req.headers.host || 'localhost';
  return `${proto}://${host}${target}`;
}

/**
 * An App Route's `request.url` as Next builds it: the query re-serialized from its parsed
 * form (repeated keys grouped, `?b` as `b=`, form encoding, Next's internal keys dropped).
 * Unlike a pages handler's `req.url`, query keys named like a route parameter stay.
 * @param {import('node:http').IncomingMessage} req
 * @returns {string}
 */
export function appRouteUrl(req) {
  return requestUrl(req, normalizeUrl(req.url || '/', []));
}

/**
 * @param {import('node:http').IncomingMessage} req
 * @param {AbortSignal} signal
 * @param {string | URL} [url] defaults to {@link requestUrl}
 * @returns {NextRequest}
 */
export function toWebRequest(req, signal, url = requestUrl(req)) {
  // From req.headers, as Next builds its request (so the filled-in x-forwarded-* are there).
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name[0] === ':') continue;
    try {
      if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      else headers.set(name, value);
    } catch {}
  }
  const method = req.method || 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  /** @type {RequestInit & { duplex?: 'half' }} */
  const init = { method, headers, signal };
  if (hasBody) {
    init.body = /** @type {ReadableStream} */ (Readable.toWeb(req));
    init.duplex = 'half';
  }
  return new NextRequest(url, init);
}

/** The Vary of every App Router answer under `next start`: its client router's cache keys. */
export const NEXT_ROUTER_VARY = 'rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch';

/**
 * Writes a Web Response to the Node response, flushing body chunks as they come.
 * @param {Response} response
 * @param {import('node:http').ServerResponse} res
 * @param {boolean} headOnly
 */
export async function writeWebResponse(response, res, headOnly) {
  for (const [name, value] of response.headers) {
    if (name === 'set-cookie' || DROPPED_RESPONSE_HEADERS.has(name)) continue;
    // As Next's sendResponse: a handler's Vary joins the one already set.
    if (name === 'vary') res.appendHeader(name, value);
    else res.setHeader(name, value);
  }
  // A Set-Cookie value holding several cookies joined by commas is split, as Next does.
  const cookies = response.headers.getSetCookie().flatMap(splitCookiesString);
  if (cookies.length) res.appendHeader('set-cookie', cookies);
  res.writeHead(response.status, response.statusText || undefined);
  if (!response.body || headOnly) {
    if (response.body) await response.body.cancel().catch(() => {});
    res.end();
    return;
  }
  if (typeof res.flushHeaders === 'function') res.flushHeaders();
  const reader = response.body.getReader();
  const onClose = () => reader.cancel().catch(() => {});
  res.once('close', onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const drained = res.write(value);
      // As Next's pipeToNodeResponse: each chunk leaves the compressor at once.
      /** @type {any} */ (res).flush?.();
      if (!drained) await new Promise((resolve) => res.once('drain', resolve));
      if (res.destroyed) break;
    }
    res.end();
  } finally {
    res.off('close', onClose);
  }
}

/**
 * Answers with the handler's Response, or 500 when it throws or returns something else.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {(signal: AbortSignal) => unknown} call called with a signal that aborts when the client goes away
 */
async function respond(req, res, call) {
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.once('close', onClose);
  try {
    const response = await call(abort.signal);
    if (!(response instanceof Response)) {
      throw new Error(
        `No response is returned from route handler for ${req.method} ${req.url}. Ensure you return a \`Response\` or a \`NextResponse\` in all branches of your handler.`,
      );
    }
    await writeWebResponse(response, res, req.method === 'HEAD');
  } catch (err) {
    console.error(err);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.end();
    } else {
      res.destroy();
    }
  } finally {
    res.off('close', onClose);
  }
}

/**
 * An Edge API route's request URL as Next builds it: the query of the request (repeated
 * keys grouped) with the route parameters on top, a parameter replacing a query key of the
 * same name in place; then Next's internal `nxtP…`/`nxtI…` keys lose their prefix.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('./query.js').Query} params
 * @returns {URL}
 */
export function edgeRouteUrl(req, params) {
  const url = new URL(requestUrl(req));
  /** @type {Record<string, any>} */
  const query = {};
  for (const [key, value] of url.searchParams) {
    const existing = query[key];
    if (typeof existing === 'undefined') query[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else query[key] = [existing, value];
  }
  /** @param {unknown} v */
  const text = (v) => (typeof v === 'string' ? v : (typeof v === 'number' && !Number.isNaN(v)) || typeof v === 'boolean' ? String(v) : '');
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...Object.fromEntries(url.searchParams), ...query, ...params })) {
    if (Array.isArray(value)) for (const item of value) search.append(key, text(item));
    else search.set(key, text(value));
  }
  url.search = search.toString();
  for (const key of [...url.searchParams.keys()]) {
    const prefix = ['nxtP', 'nxtI'].find((p) => key !== p && key.startsWith(p));
    if (!prefix) continue;
    const values = url.searchParams.getAll(key);
    const normalized = key.slice(prefix.length);
    url.searchParams.delete(normalized);
    for (const v of values) url.searchParams.append(normalized, v);
    url.searchParams.delete(key);
  }
  return url;
}

/**
 * An Edge API route (`pages/api` file with `config.runtime = 'edge'`): the handler gets a
 * Web Request for {@link edgeRouteUrl}, as Next passes it.
 * @param {(request: Request, event: { waitUntil(p: Promise<unknown>): void }) => unknown} handler
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 */
export async function runEdgeApi(handler, req, res) {
  const { params } = takeGatewayHeaders(req);
  const event = { waitUntil: (/** @type {Promise<unknown>} */ p) => void Promise.resolve(p).catch((e) => console.error(e)) };
  await respond(req, res, (signal) => handler(toWebRequest(req, signal, edgeRouteUrl(req, params)), event));
}

/**
 * Runs one request through a route module. Never rejects.
 * @param {RouteModule} mod
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {{ methods?: Record<string, RouteHandler> }} [options]
 */
export async function runAppRoute(mod, req, res, options = {}) {
  /** @type {Record<string, RouteHandler>} */
  const methods = options.methods ?? implementMethods(mod);
  const method = req.method || 'GET';
  // Next sets its router's cache keys on every App Router answer before the handler runs.
  res.appendHeader('vary', NEXT_ROUTER_VARY);
  if (!HTTP_METHODS.includes(/** @type {any} */ (method))) {
    return respond(req, res, () => new Response(null, { status: 400 }));
  }
  const { params, dynamic, preview, previewInvalid } = takeGatewayHeaders(req);
  // As in Next 16: a Promise of the params for a dynamic route, undefined for a static one.
  const context = { params: dynamic ? Promise.resolve(params) : undefined };
  // Next clears a broken preview cookie pair before the handler runs (its cookies follow).
  if (previewInvalid) clearPreviewCookies(res);
  await respond(req, res, async (signal) => {
    const request = toWebRequest(req, signal, appRouteUrl(req));
    /** @type {import('./request-store.js').RequestStore} */
    const store = {
      headers: request.headers,
      preview: preview !== undefined,
      draft: null,
      isAction: isPossibleServerAction(req),
    };
    /** @type {unknown} */
    let response;
    try {
      response = await requestStore.run(store, () => methods[method](request, context));
    } catch (err) {
      const answer = navigationAnswer(err, store.isAction);
      if (!answer) throw err;
      // redirect()/permanentRedirect(): Location and the cookies set so far; notFound() and
      // the others: a bare status.
      if (answer.location === undefined) return new Response(null, { status: answer.status });
      const headers = new Headers({ Location: answer.location });
      appendMutableCookies(headers, store.mutableCookies);
      setDraftHeaders(store, res);
      return new Response(null, { status: answer.status, headers });
    }
    return withRequestStore(response, store, res);
  });
}

/**
 * Whether Next would treat the request as a possible Server Action submission (then
 * redirect() answers 303): a POST with a `next-action` header, an exact
 * `application/x-www-form-urlencoded` type, or a multipart form.
 * @param {import('node:http').IncomingMessage} req
 */
function isPossibleServerAction(req) {
  if (req.method !== 'POST') return false;
  const type = req.headers['content-type'];
  return (
    typeof req.headers['next-action'] === 'string' ||
    type === 'application/x-www-form-urlencoded' ||
    (typeof type === 'string' && type.startsWith('multipart/form-data'))
  );
}

/**
 * Draft Mode changes become the preview headers of the contract.
 * @param {import('./request-store.js').RequestStore} store
 * @param {import('node:http').ServerResponse} res
 */
function setDraftHeaders(store, res) {
  if (store.draft === 'enable') res.setHeader(PREVIEW_SET_HEADER, encodePreviewSet({}, {}));
  if (store.draft === 'disable') res.setHeader(PREVIEW_CLEAR_HEADER, encodePreviewClear(undefined));
}

/**
 * Adds what the handler did through `next/headers` to its response as Next does: cookies
 * set or deleted through `cookies()` go under the response's own Set-Cookie cookies (which
 * win), Draft Mode changes become the preview headers.
 * @param {unknown} response
 * @param {import('./request-store.js').RequestStore} store
 * @param {import('node:http').ServerResponse} res
 */
function withRequestStore(response, store, res) {
  if (!(response instanceof Response)) return response;
  setDraftHeaders(store, res);
  const headers = new Headers(response.headers);
  if (!appendMutableCookies(headers, store.mutableCookies)) return response;
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
