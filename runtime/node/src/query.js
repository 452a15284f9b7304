// `req.query` and `req.url` as Next.js gives them to a pages/api handler.
//
// - `req.query`: the query string (a repeated key becomes an array) without Next's
//   internal keys, then the route parameters on top (a parameter wins over a query key of
//   the same name).
// - `req.url`: the path and the query re-serialized (form encoding, repeated keys grouped),
//   without internal keys and without query keys named like a route parameter.

import { runtimeLog } from './log.js';

/** @typedef {Record<string, string | string[]>} Query */

/** Request header in which the gateway passes the route parameters (a JSON object). */
export const PARAMS_HEADER = 'x-apiroute-params';
/** Request header in which the gateway passes the matched pattern, e.g. `/api/users/[id]`. */
export const PATTERN_HEADER = 'x-apiroute-pattern';

const INTERNAL_PREFIXES = ['nxtP', 'nxtI'];

/**
 * Drops Next's internal keys (`nextInternalLocale`, `nxtP…`, `nxtI…`) and `extra` keys.
 * @param {Record<string, unknown>} query
 * @param {Iterable<string>} [extra]
 */
function filterInternal(query, extra = []) {
  delete query.nextInternalLocale;
  const drop = new Set(extra);
  for (const key in query) {
    if (drop.has(key) || INTERNAL_PREFIXES.some((p) => key !== p && key.startsWith(p))) delete query[key];
  }
}

/**
 * @param {string} url request target
 * @returns {URL | null}
 */
function parse(url) {
  try {
    return new URL(url, 'http://n');
  } catch {
    return null;
  }
}

/**
 * The query string of a request target, as Next parses it into `req.query`. Built on a
 * plain object as Next does, so inherited names (`constructor`, `toString`) collect the
 * inherited value first, exactly as in Next.
 * @param {string} url request target, e.g. `/api/x?a=1&a=2`
 * @returns {Query}
 */
export function parseQuery(url) {
  const parsed = parse(url);
  /** @type {Record<string, any>} */
  const query = {};
  if (!parsed) return query;
  for (const [key, value] of parsed.searchParams) {
    const existing = query[key];
    if (typeof existing === 'undefined') query[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else query[key] = [existing, value];
  }
  filterInternal(query);
  return query;
}

/**
 * @param {unknown} value
 * @returns {string}
 */
function stringifyParam(value) {
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && !Number.isNaN(value)) || typeof value === 'boolean') return String(value);
  return '';
}

/**
 * `req.url` as Next hands it to the handler.
 * @param {string} url request target as received
 * @param {Iterable<string>} paramNames the route's parameter names
 * @returns {string}
 */
export function normalizeUrl(url, paramNames) {
  const parsed = parse(url);
  if (!parsed) return url;
  /** @type {Record<string, string | string[]>} */
  const query = {};
  for (const key of parsed.searchParams.keys()) {
    const values = parsed.searchParams.getAll(key);
    query[key] = values.length > 1 ? values : values[0];
  }
  filterInternal(query, paramNames);
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (Array.isArray(value)) for (const item of value) search.append(key, stringifyParam(item));
    else search.set(key, stringifyParam(value));
  }
  const qs = String(search);
  return parsed.pathname.replace(/[?#]/g, encodeURIComponent) + (qs ? `?${qs}`.replace('#', '%23') : '');
}

/**
 * A header value as text: the gateway sends ASCII (JSON `\u` escapes), but a value that
 * arrived as raw UTF-8 bytes (read by Node as latin1) is decoded as UTF-8.
 * @param {string} value
 * @returns {string}
 */
function headerText(value) {
  return /[^\x00-\x7f]/.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value;
}

/**
 * Route parameters from the gateway's header, and the route's parameter names. A name sent
 * as `null` (an optional catch-all that took no segment) is a name without a value, as
 * Next leaves it out of `req.query`. `{}` and no names when absent or unreadable.
 * @param {string | string[] | undefined} header
 * @returns {{ params: Query, names: string[] }}
 */
export function readParams(header) {
  /** @type {Query} */
  const params = {};
  /** @type {string[]} */
  const names = [];
  if (typeof header !== 'string' || header === '') return { params, names };
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(headerText(header));
  } catch {
    runtimeLog('warn', `ignoring malformed ${PARAMS_HEADER} header`);
    return { params, names };
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return { params, names };
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === 'string') params[key] = v;
    else if (Array.isArray(v) && v.every((s) => typeof s === 'string')) params[key] = v;
    else if (v !== null) continue;
    names.push(key);
  }
  return { params, names };
}

/**
 * Route parameters from the gateway's header; `{}` when absent or unreadable.
 * @param {string | string[] | undefined} header
 * @returns {Query}
 */
export function parseParams(header) {
  return readParams(header).params;
}

/**
 * `req.query`: the route parameters win over query keys of the same name.
 * @param {Query} query
 * @param {Query} params
 * @returns {Query}
 */
export function mergeQuery(query, params) {
  return { ...query, ...params };
}
