// A pages/api handler `handler(req, res)` with Next.js's `req`/`res` semantics.

import { DEFAULT_SIZE_LIMIT, parseBody } from './body.js';
import { parseCookies } from './cookies.js';
import { ApiError, sendError } from './errors.js';
import { takeGatewayHeaders } from './contract.js';
import { clearPreviewCookies, readPreviewData } from './preview.js';
import { mergeQuery, normalizeUrl, parseQuery } from './query.js';
import { decorateResponse } from './response.js';

/**
 * @typedef {{
 *   api?: {
 *     bodyParser?: false | { sizeLimit?: string | number },
 *     responseLimit?: boolean | string | number,
 *     externalResolver?: boolean,
 *   },
 *   maxDuration?: number,
 * }} PageConfig
 * @typedef {(req: import('node:http').IncomingMessage, res: import('./response.js').ApiResponse) => unknown} PagesHandler
 */

/**
 * Defines a property computed on first read (and then writable), as Next's `setLazyProp`.
 * @param {object} target
 * @param {string} prop
 * @param {() => unknown} getter
 */
function setLazyProp(target, prop, getter) {
  Object.defineProperty(target, prop, {
    configurable: true,
    enumerable: true,
    get() {
      const value = getter();
      Object.defineProperty(target, prop, { configurable: true, enumerable: true, writable: true, value });
      return value;
    },
    set(value) {
      Object.defineProperty(target, prop, { configurable: true, enumerable: true, writable: true, value });
    },
  });
}

/**
 * `res.setHeader` as Next patches it for every request: after the headers went out it is
 * ignored (no ERR_HTTP_HEADERS_SENT), and a Set-Cookie value is stored as an array without
 * duplicates (a string becomes `[string]`, anything else `[]`).
 * @param {import('node:http').ServerResponse} res
 */
export function patchSetHeader(res) {
  const setHeader = res.setHeader.bind(res);
  /**
   * @param {string} name
   * @param {number | string | readonly string[]} value
   */
  res.setHeader = (name, value) => {
    if (res.headersSent) return res;
    if (name.toLowerCase() === 'set-cookie') {
      value = [...new Set(typeof value === 'string' ? [value] : Array.isArray(value) ? value : [])];
    }
    return setHeader(name, value);
  };
}

/** Marks the error thrown for an informational final status. */
const INFORMATIONAL = Symbol('informational');

/**
 * Refuses a 1xx status as the handler's final answer. `next start` writes such a head and
 * then nothing, so the client waits for a final response that never comes; here the head
 * is not written, the handler's call throws, and the request is answered 500 like any
 * handler error. 1xx heads sent with `res.writeEarlyHints()`/`writeContinue()` are not
 * final and pass.
 * @param {import('node:http').ServerResponse} res
 */
function refuseInformationalStatus(res) {
  const writeHead = res.writeHead;
  /** @type {any} */ (res).writeHead = function (/** @type {any[]} */ ...args) {
    const status = Number(args[0]);
    if (status >= 100 && status <= 199) {
      throw Object.assign(
        new Error(
          `API handler answered ${describeRequest(res)} with informational status ${status}, which cannot be a final response: next start would send it and leave the client waiting. Use res.writeEarlyHints() for 103 Early Hints.`,
        ),
        { [INFORMATIONAL]: true },
      );
    }
    return writeHead.apply(res, /** @type {any} */ (args));
  };
}

/**
 * `METHOD url` of the response's request, for messages.
 * @param {import('node:http').ServerResponse} res
 */
function describeRequest(res) {
  return `${res.req?.method} ${res.req?.url}`;
}

/**
 * Runs one request through a pages/api handler. Resolves when the handler's promise
 * settles (the response may still be streaming); never rejects.
 * @param {PagesHandler} handler
 * @param {PageConfig} config
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 */
export async function runPagesHandler(handler, config, req, res) {
  const apiReq = /** @type {import('node:http').IncomingMessage & Record<string, unknown>} */ (req);
  patchSetHeader(res);
  refuseInformationalStatus(res);
  try {
    const bodyParser = config.api?.bodyParser;
    const externalResolver = config.api?.externalResolver || false;
    const gateway = takeGatewayHeaders(req);
    // Next reads the preview cookies before the handler runs and clears a broken pair then.
    if (gateway.previewInvalid) clearPreviewCookies(res);
    const query = parseQuery(req.url || '/');
    req.url = normalizeUrl(req.url || '/', gateway.paramNames);
    setLazyProp(apiReq, 'cookies', () => parseCookies(req.headers.cookie));
    Object.defineProperty(apiReq, 'query', {
      value: mergeQuery(query, gateway.params),
      writable: true,
      enumerable: true,
      configurable: true,
    });
    setLazyProp(apiReq, 'previewData', () => readPreviewData(gateway.preview));
    setLazyProp(apiReq, 'preview', () => (apiReq.previewData !== false ? true : undefined));
    setLazyProp(apiReq, 'draftMode', () => apiReq.preview);
    if (bodyParser !== false && !apiReq.body) {
      apiReq.body = await parseBody(req, (bodyParser && bodyParser.sizeLimit) || DEFAULT_SIZE_LIMIT);
    }
    const api = decorateResponse(req, res);
    let piped = false;
    res.once('pipe', () => (piped = true));
    const result = await handler(req, api);
    if (result instanceof Response) {
      // Next (production) ignores it too; say why the request may stall.
      console.warn(
        `[apiroutes-node] API handler returned a Response object for ${req.method} ${req.url}; pages/api handlers must write to res (a Response is for app route.js files).`,
      );
    }
    if (!externalResolver && !res.writableEnded && !piped) {
      console.warn(
        `[apiroutes-node] API resolved without sending a response for ${req.method} ${req.url}, this may result in stalled requests.`,
      );
    }
  } catch (err) {
    if (err instanceof ApiError) {
      // Discard the rest of an over-limit body so that the connection stays usable.
      if (err.statusCode === 413) req.resume();
      sendError(res, err.statusCode, err.message);
    } else {
      console.error(err);
      // The runtime refused the handler's head: answer as if the handler had set nothing.
      if (err && typeof err === 'object' && INFORMATIONAL in err && !res.headersSent) {
        for (const name of res.getHeaderNames()) res.removeHeader(name);
      }
      sendError(res, 500, 'Internal Server Error');
    }
  }
}
