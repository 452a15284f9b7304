// A pages/api handler `handler(req, res)` with Next.js's `req`/`res` semantics.

import { DEFAULT_SIZE_LIMIT, parseBody } from './body.js';
import { parseCookies } from './cookies.js';
import { ApiError, sendError } from './errors.js';
import { takeGatewayHeaders } from './contract.js';
import { readPreviewData } from './preview.js';
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
 * Runs one request through a pages/api handler. Resolves when the handler's promise
 * settles (the response may still be streaming); never rejects.
 * @param {PagesHandler} handler
 * @param {PageConfig} config
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 */
export async function runPagesHandler(handler, config, req, res) {
  const apiReq = /** @type {import('node:http').IncomingMessage & Record<string, unknown>} */ (req);
  try {
    const bodyParser = config.api?.bodyParser;
    const externalResolver = config.api?.externalResolver || false;
    const gateway = takeGatewayHeaders(req);
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
      sendError(res, 500, 'Internal Server Error');
    }
  }
}
