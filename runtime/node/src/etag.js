// ETags and conditional requests for `res.send()`. The hash is the one Next.js (MIT)
// uses for API answers, so that a client's cached ETag stays valid across the move.

/**
 * 52-bit FNV-1a over UTF-16 code units.
 * @param {string} str
 * @returns {number}
 */
export function fnv1a52(str) {
  const len = str.length;
  let i = 0;
  let t0 = 0, v0 = 0x2325, t1 = 0, v1 = 0x8422, t2 = 0, v2 = 0x9ce4, t3 = 0, v3 = 0xcbf2;
  while (i < len) {
    v0 ^= str.charCodeAt(i++);
    t0 = v0 * 435;
    t1 = v1 * 435;
    t2 = v2 * 435;
    t3 = v3 * 435;
    t2 += v0 << 8;
    t3 += v1 << 8;
    t1 += t0 >>> 16;
    v0 = t0 & 65535;
    t2 += t1 >>> 16;
    v1 = t1 & 65535;
    v3 = (t3 + (t2 >>> 16)) & 65535;
    v2 = t2 & 65535;
  }
  return (v3 & 15) * 281474976710656 + v2 * 4294967296 + v1 * 65536 + (v0 ^ (v3 >> 4));
}

/**
 * @param {string} payload
 * @returns {string} a strong ETag
 */
export function generateETag(payload) {
  return `"${fnv1a52(payload).toString(36)}${payload.length.toString(36)}"`;
}

const NO_CACHE = /(?:^|,)\s*?no-cache\s*?(?:,|$)/;

/**
 * Whether the client's cached copy is still fresh (answer 304), per `If-None-Match` /
 * `If-Modified-Since` against a response that has only an ETag.
 * @param {import('node:http').IncomingHttpHeaders} headers request headers
 * @param {string} etag
 * @returns {boolean}
 */
export function isFresh(headers, etag) {
  const modifiedSince = headers['if-modified-since'];
  const noneMatch = headers['if-none-match'];
  if (!modifiedSince && !noneMatch) return false;
  const cacheControl = headers['cache-control'];
  if (cacheControl && NO_CACHE.test(cacheControl)) return false;
  if (noneMatch && noneMatch !== '*') {
    const matches = parseTokenList(noneMatch);
    if (!matches.some((m) => m === etag || m === `W/${etag}` || `W/${m}` === etag)) return false;
  }
  // The response carries no Last-Modified, so a date condition is never satisfied.
  if (modifiedSince) return false;
  return true;
}

/**
 * @param {string} str
 * @returns {string[]}
 */
function parseTokenList(str) {
  let end = 0;
  let start = 0;
  /** @type {string[]} */
  const list = [];
  for (let i = 0; i < str.length; i++) {
    switch (str.charCodeAt(i)) {
      case 0x20:
        if (start === end) start = end = i + 1;
        break;
      case 0x2c:
        list.push(str.substring(start, end));
        start = end = i + 1;
        break;
      default:
        end = i + 1;
    }
  }
  list.push(str.substring(start, end));
  return list;
}
