// An App Router `route.js` file (exports GET, POST, ...): Web Request in, Response out,
// with Next.js's automatic HEAD and OPTIONS, 405 and 400 answers. Also Edge API routes
// (`pages/api` files with `config.runtime = 'edge'`), which share the Web plumbing.

import { Readable } from 'node:stream';
import { NextRequest, RequestCookies, ResponseCookies, serializeCookie } from './next-server.js';
import { PREVIEW_CLEAR_HEADER, PREVIEW_SET_HEADER, encodePreviewClear, encodePreviewSet } from './preview.js';
import { requestStore } from './request-store.js';
import { takeGatewayHeaders } from './contract.js';

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
 * @returns {string}
 */
export function requestUrl(req) {
  const proto = String(req.headers['x-forwarded-proto'] || '').includes('https') ? 'https' : 'http';
  const forwardedHost = req.headers['x-forwarded-host'];
  const host = (typeof forwardedHost === 'string' && forwardedHost.split(',')[0].trim()) || req.headers.host || 'localhost';
  return `${proto}://${host}${req.url || '/'}`;
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

/**
 * Writes a Web Response to the Node response, flushing body chunks as they come.
 * @param {Response} response
 * @param {import('node:http').ServerResponse} res
 * @param {boolean} headOnly
 */
export async function writeWebResponse(response, res, headOnly) {
  /** @type {Record<string, string | string[]>} */
  const headers = {};
  for (const [name, value] of response.headers) {
    if (name === 'set-cookie') continue;
    headers[name] = value;
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers['set-cookie'] = cookies;
  res.writeHead(response.status, response.statusText || undefined, headers);
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
      if (!res.write(value)) await new Promise((resolve) => res.once('drain', resolve));
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
 * An Edge API route (`pages/api` file with `config.runtime = 'edge'`): the handler gets a
 * Web Request whose search params carry the route parameters (a parameter replaces a
 * query key of the same name, in place), as Next passes them.
 * @param {(request: Request, event: { waitUntil(p: Promise<unknown>): void }) => unknown} handler
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 */
export async function runEdgeApi(handler, req, res) {
  const { params } = takeGatewayHeaders(req);
  const event = { waitUntil: (/** @type {Promise<unknown>} */ p) => void Promise.resolve(p).catch((e) => console.error(e)) };
  await respond(req, res, (signal) => {
    const url = new URL(requestUrl(req));
    for (const [key, value] of Object.entries(params)) {
      if (Array.isArray(value)) {
        url.searchParams.delete(key);
        for (const v of value) url.searchParams.append(key, v);
      } else {
        url.searchParams.set(key, value);
      }
    }
    return handler(toWebRequest(req, signal, url), event);
  });
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
  if (!HTTP_METHODS.includes(/** @type {any} */ (method))) {
    return respond(req, res, () => new Response(null, { status: 400 }));
  }
  const { params, dynamic, preview } = takeGatewayHeaders(req);
  // As in Next 16: a Promise of the params for a dynamic route, undefined for a static one.
  const context = { params: dynamic ? Promise.resolve(params) : undefined };
  await respond(req, res, async (signal) => {
    const request = toWebRequest(req, signal);
    /** @type {import('./request-store.js').RequestStore} */
    const store = {
      headers: request.headers,
      cookies: new RequestCookies(request.headers),
      responseCookies: new ResponseCookies(new Headers()),
      preview: preview !== undefined,
      draft: null,
    };
    const response = await requestStore.run(store, () => methods[method](request, context));
    return withRequestStore(response, store, res);
  });
}

/**
 * Adds what the handler did through `next/headers` to its response: cookies it set are
 * appended (after its own), Draft Mode changes become the preview headers.
 * @param {unknown} response
 * @param {import('./request-store.js').RequestStore} store
 * @param {import('node:http').ServerResponse} res
 */
function withRequestStore(response, store, res) {
  if (!(response instanceof Response)) return response;
  if (store.draft === 'enable') res.setHeader(PREVIEW_SET_HEADER, encodePreviewSet({}, {}));
  if (store.draft === 'disable') res.setHeader(PREVIEW_CLEAR_HEADER, encodePreviewClear(undefined));
  const added = store.responseCookies.getAll();
  if (added.length === 0) return response;
  const headers = new Headers(response.headers);
  for (const cookie of added) headers.append('set-cookie', serializeCookie(cookie));
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
