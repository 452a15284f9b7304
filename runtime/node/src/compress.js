// Response compression as `next start` does it (next.config `compress`, on by default):
// Next.js 16.4.6 runs every response through its bundled `compression` middleware
// (1.7), and this is that middleware's behaviour, written again on node:zlib because the
// runtime ships without dependencies:
//
// - only a compressible Content-Type (src/compressible.js) and no `Cache-Control:
//   no-transform`; such a response always gets `Vary: Accept-Encoding`;
// - not when the body is known to be under 1 KiB (its Content-Length, or the one chunk
//   given to `res.end`), already encoded, or the request is HEAD;
// - gzip, else deflate, by the request's Accept-Encoding (gzip wins a tie), with zlib's
//   defaults; Content-Length goes, and the body is streamed (chunked);
// - `res.flush()` pushes out what zlib holds (Server-Sent Events).

import zlib from 'node:zlib';
import { COMPRESSIBLE, NOT_COMPRESSIBLE, RULE } from './compressible.js';

/** @type {Set<string>} */
const NEVER = NOT_COMPRESSIBLE;

const THRESHOLD = 1024;
const NO_TRANSFORM = /(?:^|,)\s*?no-transform\s*?(?:,|$)/;
const MEDIA_TYPE = /^\s*([^;\s]*)(?:;|\s|$)/;

/**
 * Whether a Content-Type is compressible, as the `compressible` package decides.
 * @param {unknown} contentType
 */
export function isCompressible(contentType) {
  if (typeof contentType !== 'string' || !contentType) return false;
  const type = MEDIA_TYPE.exec(contentType)?.[1]?.toLowerCase() ?? '';
  if (COMPRESSIBLE.has(type)) return true;
  if (NEVER.has(type)) return false;
  return RULE.test(type);
}

/**
 * @typedef {{ encoding: string, q: number, i: number }} Accepted
 */

/**
 * One element of Accept-Encoding, as `negotiator` reads it.
 * @param {string} text
 * @param {number} i
 * @returns {Accepted | null}
 */
function parseEncoding(text, i) {
  const match = /^\s*([^\s;]+)\s*(?:;(.*))?$/.exec(text);
  if (!match) return null;
  let q = 1;
  if (match[2]) {
    for (const param of match[2].split(';')) {
      const [key, value] = param.trim().split('=');
      if (key === 'q') {
        q = parseFloat(value);
        break;
      }
    }
  }
  return { encoding: match[1], q, i };
}

/**
 * The first of `available` the request accepts best (`negotiator`'s `encoding()`):
 * highest q, then an exact name over `*`, then earlier in the header, then earlier in
 * `available`. `identity` is acceptable unless the header refuses it.
 * @param {string | undefined} header
 * @param {string[]} available
 * @returns {string | undefined}
 */
export function negotiateEncoding(header, available) {
  /** @type {Accepted[]} */
  const accepts = [];
  let hasIdentity = false;
  let minQuality = 1;
  const parts = (header || '').split(',');
  parts.forEach((part, i) => {
    const e = parseEncoding(part.trim(), i);
    if (!e) return;
    accepts.push(e);
    hasIdentity ||= e.encoding.toLowerCase() === 'identity' || e.encoding === '*';
    minQuality = Math.min(minQuality, e.q || 1);
  });
  if (!hasIdentity) accepts.push({ encoding: 'identity', q: minQuality, i: parts.length });
  const ranked = available
    .map((name, index) => {
      let best = { o: -1, q: 0, s: 0, i: index };
      for (const a of accepts) {
        const s = a.encoding.toLowerCase() === name.toLowerCase() ? 1 : a.encoding === '*' ? 0 : -1;
        if (s < 0) continue;
        if ((best.s - s || best.q - a.q || best.o - a.i) < 0) best = { o: a.i, q: a.q, s, i: index };
      }
      return { name, ...best };
    })
    .filter((p) => p.q > 0)
    .sort((a, b) => b.q - a.q || b.s - a.s || a.o - b.o || a.i - b.i);
  return ranked[0]?.name;
}

/**
 * Adds `field` to the response's Vary (`vary` package): once, case-insensitively, and
 * not beside `*`.
 * @param {import('node:http').ServerResponse} res
 * @param {string} field
 */
function vary(res, field) {
  const current = res.getHeader('Vary');
  const value = Array.isArray(current) ? current.join(', ') : current === undefined ? '' : String(current);
  if (value.trim() === '*') return;
  const fields = value.split(',').map((f) => f.trim().toLowerCase()).filter(Boolean);
  if (fields.includes('*')) {
    res.setHeader('Vary', '*');
    return;
  }
  if (fields.includes(field.toLowerCase())) return;
  res.setHeader('Vary', value.trim() ? `${value}, ${field}` : field);
}

/**
 * Calls `listener` once, just before the response head is written (`on-headers`): the
 * headers given to writeHead are set on the response first, so the listener sees them.
 * @param {import('node:http').ServerResponse} res
 * @param {() => void} listener
 */
function onHeaders(res, listener) {
  const writeHead = res.writeHead;
  let fired = false;
  // The hook is this response's own: `res` is the `this` of every call.
  res.writeHead = /** @type {any} */ (function writeHeadHook(/** @type {number} */ statusCode, /** @type {any[]} */ ...rest) {
    const headerIndex = typeof rest[0] === 'string' ? 1 : 0;
    const headers = rest[headerIndex];
    res.statusCode = statusCode;
    if (Array.isArray(headers)) {
      // A flat list as in rawHeaders, or [name, value] pairs; a repeated name keeps all
      // its values (Set-Cookie).
      const pairs = headers.length && !Array.isArray(headers[0]) ? headers.flatMap((v, i) => (i % 2 ? [] : [[v, headers[i + 1]]])) : headers;
      /** @type {Map<string, [string, string[]]>} */
      const byName = new Map();
      for (const [name, value] of pairs) {
        const key = String(name).toLowerCase();
        const entry = byName.get(key) ?? [String(name), []];
        entry[1].push(value);
        byName.set(key, entry);
      }
      for (const [name, values] of byName.values()) res.setHeader(name, values.length > 1 ? values : values[0]);
    } else if (headers) {
      for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value);
    }
    /** @type {any[]} */
    const args = [statusCode, ...rest.slice(0, headerIndex)];
    if (!fired) {
      fired = true;
      listener();
      if (res.statusCode !== args[0]) args.splice(0, args.length, res.statusCode);
    }
    return writeHead.apply(res, /** @type {any} */ (args));
  });
}

/**
 * @param {unknown} chunk
 * @param {unknown} encoding
 */
function toBuffer(chunk, encoding) {
  if (Buffer.isBuffer(chunk)) return chunk;
  return Buffer.from(/** @type {any} */ (chunk), typeof encoding === 'string' ? /** @type {BufferEncoding} */ (encoding) : undefined);
}

/**
 * Wraps `res` so that what is written to it is compressed when the rules above say so.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 */
export function compressResponse(req, res) {
  /** @type {any} */
  const end = res.end;
  /** @type {any} */
  const write = res.write;
  const on = res.on;
  let ended = false;
  /** @type {number | undefined} */
  let length;
  /** @type {zlib.Gzip | zlib.Deflate | null} */
  let stream = null;
  /** @type {[string, (...args: any[]) => void][] | null} */
  let listeners = [];
  const r = /** @type {any} */ (res);

  r.flush = () => stream?.flush();
  r.write = function compressedWrite(/** @type {any} */ chunk, /** @type {any} */ encoding, /** @type {any} */ cb) {
    if (ended) return false;
    if (!this._header) this._implicitHeader();
    return stream ? stream.write(toBuffer(chunk, encoding)) : write.call(this, chunk, encoding, cb);
  };
  r.end = function compressedEnd(/** @type {any} */ chunk, /** @type {any} */ encoding, /** @type {any} */ cb) {
    if (ended) return false;
    if (!this._header) {
      if (!this.getHeader('Content-Length')) length = chunk && typeof chunk !== 'function' ? toBuffer(chunk, encoding).length : 0;
      this._implicitHeader();
    }
    if (!stream) return end.call(this, chunk, encoding, cb);
    ended = true;
    if (chunk && typeof chunk !== 'function') stream.end(toBuffer(chunk, encoding));
    else stream.end();
    return this;
  };
  r.on = function compressedOn(/** @type {string} */ type, /** @type {(...args: any[]) => void} */ listener) {
    if (!listeners || type !== 'drain') return on.call(this, type, listener);
    if (stream) return stream.on(type, listener);
    listeners.push([type, listener]);
    return this;
  };

  const passThrough = () => {
    for (const [type, listener] of listeners ?? []) on.call(res, type, listener);
    listeners = null;
  };

  onHeaders(res, () => {
    if (!isCompressible(res.getHeader('Content-Type'))) return passThrough();
    const cacheControl = res.getHeader('Cache-Control');
    if (typeof cacheControl === 'string' && NO_TRANSFORM.test(cacheControl)) return passThrough();
    vary(res, 'Accept-Encoding');
    if (Number(res.getHeader('Content-Length')) < THRESHOLD || (length !== undefined && length < THRESHOLD)) return passThrough();
    if ((res.getHeader('Content-Encoding') || 'identity') !== 'identity') return passThrough();
    if (req.method === 'HEAD') return passThrough();
    const accept = req.headers['accept-encoding'];
    let method = negotiateEncoding(accept, ['gzip', 'deflate', 'identity']);
    if (method === 'deflate' && negotiateEncoding(accept, ['gzip'])) method = negotiateEncoding(accept, ['gzip', 'identity']);
    if (!method || method === 'identity') return passThrough();
    stream = method === 'gzip' ? zlib.createGzip() : zlib.createDeflate();
    for (const [type, listener] of listeners ?? []) stream.on(type, listener);
    res.setHeader('Content-Encoding', method);
    res.removeHeader('Content-Length');
    const zipped = stream;
    zipped.on('data', (data) => {
      if (write.call(res, data) === false) zipped.pause();
    });
    zipped.on('end', () => end.call(res));
    on.call(res, 'drain', () => zipped.resume());
  });
}
