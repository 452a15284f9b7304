// Preview Mode through the gateway (CONTRACT.md): the runtime never sees the signing key.
// The gateway verifies its cookie and sends the preview data in a request header; the
// handler's setPreviewData()/clearPreviewData() become response headers that the gateway
// turns into signed cookies and strips.

import { runtimeLog } from './log.js';

/** Request header: base64url JSON of the preview data, set by the gateway only. */
export const PREVIEW_HEADER = 'x-apiroute-preview';
/** Response header: base64url JSON `{"data": ..., "options": {"maxAge"?, "path"?}}`. */
export const PREVIEW_SET_HEADER = 'x-apiroute-preview-set';
/** Response header: `1`, or base64url JSON `{"options": {"path": ...}}` when a path was given. */
export const PREVIEW_CLEAR_HEADER = 'x-apiroute-preview-clear';

/** Next refuses preview data whose cookie would pass 2KB; we cap the encoded header. */
export const MAX_PREVIEW_HEADER_BYTES = 2048;

/**
 * @typedef {{ maxAge?: number, path?: string }} PreviewOptions
 */

/**
 * @param {unknown} value
 * @returns {string}
 */
export function encodeJson(value) {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/**
 * @param {string} text base64url (padding optional)
 * @returns {unknown}
 */
export function decodeJson(text) {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new Error('not base64url');
  return JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
}

/**
 * `req.previewData`: the data from the gateway's header, `false` outside Preview Mode.
 * @param {string | string[] | undefined} header
 * @returns {unknown}
 */
export function readPreviewData(header) {
  if (typeof header !== 'string' || header === '') return false;
  try {
    return decodeJson(header);
  } catch {
    runtimeLog('warn', `ignoring malformed ${PREVIEW_HEADER} header`);
    return false;
  }
}

/**
 * Keeps the options Next honours (`maxAge`, `path`).
 * @param {PreviewOptions | undefined} options
 * @returns {PreviewOptions}
 */
function pickOptions(options) {
  /** @type {PreviewOptions} */
  const picked = {};
  if (options && options.maxAge !== undefined) picked.maxAge = options.maxAge;
  if (options && options.path !== undefined) picked.path = options.path;
  return picked;
}

/**
 * Value of `x-apiroute-preview-set`.
 * @param {unknown} data
 * @param {PreviewOptions | undefined} options
 * @returns {string}
 */
export function encodePreviewSet(data, options) {
  const value = encodeJson({ data, options: pickOptions(options) });
  if (value.length > MAX_PREVIEW_HEADER_BYTES) {
    throw new Error(
      'Preview data is limited to 2KB currently, reduce how much data you are storing as preview data to continue',
    );
  }
  return value;
}

/**
 * Value of `x-apiroute-preview-clear`.
 * @param {{ path?: string } | undefined} options
 * @returns {string}
 */
export function encodePreviewClear(options) {
  if (options && options.path !== undefined) return encodeJson({ options: { path: options.path } });
  return '1';
}

/**
 * Request header: the gateway found the client's preview cookies present but not a valid
 * pair (one of the two, a bad signature, expired). The function then answers with Next's
 * clearing cookies where Next puts them ({@link clearPreviewCookies}).
 */
export const PREVIEW_INVALID_HEADER = 'x-apiroute-preview-invalid';

const CLEARED = Symbol.for('apiroutes.previewCleared');

/**
 * Next's `clearPreviewData(res)` for a broken cookie pair: both cookies blanked (its
 * attributes, `Path=/`), added to the Set-Cookie list the response has so far. A later
 * `res.clearPreviewData()` is then a no-op, as in Next.
 * @param {import('node:http').ServerResponse} res
 */
export function clearPreviewCookies(res) {
  if (previewCleared(res)) return;
  const previous = res.getHeader('Set-Cookie');
  const attrs = 'Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None';
  res.setHeader('Set-Cookie', [
    ...(typeof previous === 'string' ? [previous] : Array.isArray(previous) ? previous : []),
    `__prerender_bypass=; ${attrs}`,
    `__next_preview_data=; ${attrs}`,
  ]);
  Object.defineProperty(res, CLEARED, { value: true, enumerable: false });
}

/**
 * Whether {@link clearPreviewCookies} ran on this response.
 * @param {import('node:http').ServerResponse} res
 */
export function previewCleared(res) {
  return CLEARED in res;
}
