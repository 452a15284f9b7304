// Where the gateway deliberately answers differently from Next.js (DESIGN.md "Path
// patterns", last paragraph). Each row says which cases it covers, why, and what the
// gateway must answer instead: a row is an assertion, not a skip.

/**
 * @typedef {import('./lib/raw-http.mjs').RawResponse} RawResponse
 * @typedef {{ method: string, target: string, group: string }} Case
 * @typedef {{ id: string, reason: string, applies: (c: Case, next: RawResponse) => boolean, expect: (gw: RawResponse, gwJson: any) => string | null }} Difference
 */

const isJson = (/** @type {RawResponse} */ r) => /application\/json/.test(r.headers['content-type'] || '');

/** @type {Difference[]} */
export const DIFFERENCES = [
  {
    id: 'absolute-form',
    reason:
      'An absolute-form request target (`GET http://host/api/x`) is routed by its path, as RFC 9112 asks of a gateway; Next.js answers 308 to the absolute URL (an open redirect to any host).',
    applies: (c) => /^[a-z]+:\/\//i.test(c.target),
    expect: (gw, j) =>
      gw.status === 200 && j?.apiroute?.['x-apiroute-pattern'] ? null : `want 200 from a route, got ${gw.status}`,
  },
  {
    id: 'method-routing',
    reason:
      'ApiRoute `methods` adds 405 with `Allow` (Next.js has no method routing). Exercised by the gateway-only route /api/only-get (methods: [GET]); Next, without such a file, serves /api/[section].',
    applies: (c) => c.target.startsWith('/api/only-get'),
    expect: (gw, j, c) => {
      if (c.method === 'GET' || c.method === 'HEAD') {
        return gw.status === 200 && (c.method === 'HEAD' || j?.apiroute?.['x-apiroute-pattern'] === '/api/only-get')
          ? null
          : `want 200 from /api/only-get, got ${gw.status}`;
      }
      return gw.status === 405 && /\bGET\b/.test(gw.headers.allow || '') ? null : `want 405 + Allow: GET, got ${gw.status} allow=${gw.headers.allow}`;
    },
  },
  {
    id: 'trailing-slash-unmatched',
    reason:
      'Under next.config `trailingSlash: true` Next.js redirects every path without a slash to the path with one, matched or not (and only then answers 404, or 400 for a malformed escape), and answers an unmatched path with a slash 404. The gateway knows the setting only from the route a path matches (`spec.trailingSlash`), so for a path no route matches it keeps its default: 404 (or 400) at once, and a 308 to the path without the slash.',
    applies: (c) => /** @type {any} */ (c).unmatched === true,
    expect: (gw, _j, c) => {
      const [pathPart, query] = c.target.split(/\?(.*)/s);
      if (pathPart.length > 1 && pathPart.endsWith('/')) {
        const want = pathPart.replace(/\/+$/, '') + (query ? `?${query}` : '');
        return gw.status === 308 && gw.headers.location === want ? null : `want 308 to ${want}, got ${gw.status} ${gw.headers.location}`;
      }
      return (gw.status === 404 || gw.status === 400) && isJson(gw) ? null : `want 404 or 400 with a JSON body, got ${gw.status}`;
    },
  },
  {
    id: 'json-errors',
    reason:
      'Unmatched paths (404) and malformed escapes (400) get the same status with a small JSON body instead of Next.js\'s HTML error page: an API gateway has no pages.',
    applies: (c, next) => (next.status === 404 || next.status === 400) && c.method !== 'HEAD',
    expect: (gw, _j, _c, next) => (gw.status === next.status && isJson(gw) ? null : `want ${next.status} with a JSON body, got ${gw.status} ${gw.headers['content-type']}`),
  },
];

/**
 * Not compared, on purpose (documented, not asserted):
 * - the query part of the URL the function sees: Next rewrites `req.url`'s query (drops keys
 *   named like a route parameter, `?x` becomes `?x=`, a bare `?` disappears); the gateway
 *   forwards the query untouched (DESIGN.md contract: raw path and query). The path part is
 *   compared.
 * - response bodies of HEAD requests (there are none) and everything but status for them.
 */
export const NOT_COMPARED = ['query part of the forwarded URL', 'HEAD: route (no body)'];
