// TEST SHIM — stands in for the apiroutes gateway's static mode
// (`apiroutes-gateway --static FILE`), which will replace it once it exists.
//
// It does only what the gateway does toward a function (DESIGN.md, "Gateway → function
// contract" and "Preview Mode"): pick the route file for a path, forward to that file's
// runtime process with `x-apiroute-params`, drop client-sent `x-apiroute-*` headers, and
// translate Preview Mode between cookies and the runtime's headers. Its preview cookies
// are NOT signed (a test stand-in holds no key); the real gateway signs them. Its matcher
// handles this tree's routes only; the real matcher lives in apiroutes-crds.

import http from 'node:http';

export const BYPASS_COOKIE = '__prerender_bypass';
export const DATA_COOKIE = '__next_preview_data';
const SHIM_PREVIEW_ID = 'apiroutes-test-shim-preview-id';
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

/**
 * @typedef {{ pattern: string, port: number }} Route
 * @typedef {{ kind: 'static' | 'dynamic' | 'catchall' | 'optional', name?: string, text?: string }} Segment
 */

/** @param {string} pattern */
function segments(pattern) {
  return pattern.split('/').filter(Boolean).map((s) => {
    let m;
    if ((m = /^\[\[\.\.\.(.+)\]\]$/.exec(s))) return { kind: 'optional', name: m[1] };
    if ((m = /^\[\.\.\.(.+)\]$/.exec(s))) return { kind: 'catchall', name: m[1] };
    if ((m = /^\[(.+)\]$/.exec(s))) return { kind: 'dynamic', name: m[1] };
    return { kind: 'static', text: s };
  });
}

/**
 * Matches a path against one pattern; params or null.
 * @param {Segment[]} segs
 * @param {string[]} parts
 */
function matchSegments(segs, parts) {
  /** @type {Record<string, string | string[]>} */
  const params = {};
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    if (seg.kind === 'static') {
      if (parts[i] !== seg.text) return null;
    } else if (seg.kind === 'dynamic') {
      if (parts[i] === undefined) return null;
      params[/** @type {string} */ (seg.name)] = decodeURIComponent(parts[i]);
    } else {
      const rest = parts.slice(i).map((p) => decodeURIComponent(p));
      if (rest.length === 0 && seg.kind === 'catchall') return null;
      if (rest.length) params[/** @type {string} */ (seg.name)] = rest;
      return params;
    }
  }
  return parts.length === segs.length ? params : null;
}

const RANK = { static: 0, dynamic: 1, catchall: 2, optional: 3 };

/**
 * @param {Route[]} routes
 * @param {string} pathname
 */
export function matchRoute(routes, pathname) {
  const parts = pathname.split('/').filter(Boolean);
  const candidates = [];
  for (const route of routes) {
    const segs = segments(route.pattern);
    const params = matchSegments(segs, parts);
    if (params) candidates.push({ route, params, rank: segs.map((s) => RANK[s.kind]) });
  }
  candidates.sort((a, b) => {
    for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
      const d = (a.rank[i] ?? -1) - (b.rank[i] ?? -1);
      if (d) return d;
    }
    return 0;
  });
  return candidates[0] ?? null;
}

/** @param {string | undefined} header */
function parseCookieHeader(header) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const pair of (header || '').split(/; */)) {
    const eq = pair.indexOf('=');
    if (eq > 0 && !(pair.slice(0, eq).trim() in out)) out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

/**
 * Next's cookie attributes: `Max-Age`, `Path`, `Expires`, HttpOnly, Secure, SameSite=None.
 * @param {string} name
 * @param {string} value
 * @param {{ maxAge?: number, path?: string, expired?: boolean }} opts
 */
function previewCookie(name, value, opts) {
  let c = `${name}=${value}`;
  if (opts.maxAge !== undefined) c += `; Max-Age=${Math.floor(opts.maxAge)}`;
  c += `; Path=${opts.path ?? '/'}`;
  if (opts.expired) c += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  return `${c}; HttpOnly; Secure; SameSite=None`;
}

/** @param {string} value */
function fromBase64url(value) {
  return JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
}

/**
 * Starts the shim on 127.0.0.1:<free port>.
 * @param {Route[]} routes
 * @returns {Promise<{ port: number, close: () => Promise<void> }>}
 */
export async function startShim(routes) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url || '/', 'http://shim');
    const match = matchRoute(routes, url.pathname);
    if (!match) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'no route' }));
      return;
    }
    /** @type {Record<string, string | string[]>} */
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || name.startsWith('x-apiroute-')) continue;
      headers[name] = value;
    }
    // ASCII only: non-ASCII characters travel as JSON \u escapes (CONTRACT.md).
    headers['x-apiroute-params'] = JSON.stringify(match.params).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
    headers['x-apiroute-pattern'] = match.route.pattern;
    headers['x-apiroute-name'] = `conformance/${match.route.pattern}`;
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-host'] = req.headers.host || '';
    // Preview Mode: a valid cookie pair becomes x-apiroute-preview; a broken one is cleared.
    const cookies = parseCookieHeader(req.headers.cookie);
    const bypass = cookies[BYPASS_COOKIE];
    const data = cookies[DATA_COOKIE];
    let clearBroken = false;
    if (bypass !== undefined || data !== undefined) {
      let valid = bypass === SHIM_PREVIEW_ID && data !== undefined;
      if (valid) {
        try {
          fromBase64url(/** @type {string} */ (data));
        } catch {
          valid = false;
        }
      }
      if (valid) headers['x-apiroute-preview'] = /** @type {string} */ (data);
      else clearBroken = true;
    }
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding']) {
      headers['transfer-encoding'] = 'chunked';
    }
    const upstream = http.request(
      { host: '127.0.0.1', port: match.route.port, method: req.method, path: req.url, headers, agent },
      (up) => {
        // Raw pairs keep repeated headers as separate lines, as the function sent them.
        /** @type {string[]} */
        const out = [];
        /** @type {string[]} */
        const setCookies = [];
        for (let i = 0; i < up.rawHeaders.length; i += 2) {
          const name = up.rawHeaders[i];
          const lower = name.toLowerCase();
          if (HOP_BY_HOP.has(lower) || lower.startsWith('x-apiroute-')) continue;
          if (lower === 'set-cookie') setCookies.push(up.rawHeaders[i + 1]);
          else out.push(name, up.rawHeaders[i + 1]);
        }
        const set = up.headers['x-apiroute-preview-set'];
        const clear = up.headers['x-apiroute-preview-clear'];
        if (typeof set === 'string') {
          const { data: previewData, options = {} } = fromBase64url(set);
          const value = Buffer.from(JSON.stringify(previewData)).toString('base64url');
          setCookies.push(previewCookie(BYPASS_COOKIE, SHIM_PREVIEW_ID, options));
          setCookies.push(previewCookie(DATA_COOKIE, value, options));
        } else if (typeof clear === 'string' || clearBroken) {
          const options = typeof clear === 'string' && clear !== '1' ? fromBase64url(clear).options : {};
          setCookies.push(previewCookie(BYPASS_COOKIE, '', { path: options.path, expired: true }));
          setCookies.push(previewCookie(DATA_COOKIE, '', { path: options.path, expired: true }));
        }
        for (const cookie of setCookies) out.push('Set-Cookie', cookie);
        res.writeHead(up.statusCode || 502, up.statusMessage, out);
        up.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      // An early answer (413) may close the connection while the body is still being sent.
      if (res.headersSent && /** @type {any} */ (err).code === 'EPIPE') return;
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(err) }));
      } else res.destroy();
    });
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
