// The `res` helpers of a pages/api handler, with Next.js's exact output.

import { Stream } from 'node:stream';
import { generateETag, isFresh } from './etag.js';
import {
  PREVIEW_CLEAR_HEADER,
  PREVIEW_SET_HEADER,
  encodePreviewClear,
  encodePreviewSet,
  previewCleared,
} from './preview.js';

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/**
 * @typedef {import('node:http').ServerResponse & {
 *   status(statusCode: number): ApiResponse,
 *   send(body: unknown): void,
 *   json(body: unknown): void,
 *   redirect(statusOrUrl: number | string, url?: string): ApiResponse,
 *   setPreviewData(data: unknown, options?: import('./preview.js').PreviewOptions): ApiResponse,
 *   clearPreviewData(options?: { path?: string }): ApiResponse,
 *   setDraftMode(options?: { enable: boolean }): ApiResponse,
 *   revalidate(urlPath: string, opts?: unknown): Promise<void>,
 * }} ApiResponse
 */

/**
 * `res.send(body)`: null/undefined end empty; 204/304 drop body and entity headers; a
 * stream is piped (octet-stream unless typed); anything else gets an ETag (304 when the
 * client has it), a Content-Length, and JSON for objects, numbers and booleans.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {unknown} body
 */
export function sendData(req, res, body) {
  if (body === null || body === undefined) {
    res.end();
    return;
  }
  if (res.statusCode === 204 || res.statusCode === 304) {
    res.removeHeader('Content-Type');
    res.removeHeader('Content-Length');
    res.removeHeader('Transfer-Encoding');
    res.end();
    return;
  }
  const contentType = res.getHeader('Content-Type');
  if (body instanceof Stream) {
    if (!contentType) res.setHeader('Content-Type', 'application/octet-stream');
    /** @type {import('node:stream').Readable} */ (body).pipe(res);
    return;
  }
  const isJsonLike = ['object', 'number', 'boolean'].includes(typeof body);
  // Next hashes a Buffer's JSON form for its ETag; so do we, to give the same ETag.
  const text = isJsonLike ? JSON.stringify(body) : /** @type {string} */ (body);
  const etag = generateETag(String(text));
  res.setHeader('ETag', etag);
  if (isFresh(req.headers, etag)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  if (Buffer.isBuffer(body)) {
    if (!contentType) res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', body.length);
    res.end(body);
    return;
  }
  if (isJsonLike) res.setHeader('Content-Type', JSON_CONTENT_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/**
 * `res.redirect(url)` (307) or `res.redirect(status, url)`: Location and the URL as body.
 * @param {import('node:http').ServerResponse} res
 * @param {number | string} statusOrUrl
 * @param {string | undefined} url
 */
export function redirect(res, statusOrUrl, url) {
  if (typeof statusOrUrl === 'string') {
    url = statusOrUrl;
    statusOrUrl = 307;
  }
  if (typeof statusOrUrl !== 'number' || typeof url !== 'string') {
    throw new Error(
      "Invalid redirect arguments. Please use a single argument URL, e.g. res.redirect('/destination') or use a status code and URL, e.g. res.redirect(307, '/destination').",
    );
  }
  res.writeHead(statusOrUrl, { Location: url });
  res.write(url);
  res.end();
}

/**
 * Adds Next's helpers to a Node response.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @returns {ApiResponse}
 */
export function decorateResponse(req, res) {
  const api = /** @type {ApiResponse} */ (res);
  api.status = (statusCode) => {
    res.statusCode = statusCode;
    return api;
  };
  api.send = (body) => sendData(req, res, body);
  api.json = (body) => {
    res.setHeader('Content-Type', JSON_CONTENT_TYPE);
    api.send(JSON.stringify(body));
  };
  api.redirect = (statusOrUrl, url) => {
    redirect(res, statusOrUrl, url);
    return api;
  };
  // The last preview call wins, as the last of Next's Set-Cookie headers would.
  api.setPreviewData = (data, options = {}) => {
    const value = encodePreviewSet(data, options);
    res.removeHeader(PREVIEW_CLEAR_HEADER);
    res.setHeader(PREVIEW_SET_HEADER, value);
    return api;
  };
  api.clearPreviewData = (options = {}) => {
    // Already cleared before the handler ran (a broken cookie pair): a no-op, as in Next.
    if (previewCleared(res)) return api;
    const value = encodePreviewClear(options);
    res.removeHeader(PREVIEW_SET_HEADER);
    res.setHeader(PREVIEW_CLEAR_HEADER, value);
    return api;
  };
  // Draft Mode is Preview Mode with empty data (what Next's handlers then see).
  api.setDraftMode = (options = { enable: true }) =>
    options.enable ? api.setPreviewData({}) : api.clearPreviewData();
  api.revalidate = async (urlPath) => {
    throw new Error(
      `res.revalidate(${JSON.stringify(urlPath)}) is not supported by apiroutes: there is no Next.js page cache to revalidate`,
    );
  };
  return api;
}
