// A small stand-in for `next/server` (NextRequest, NextResponse) so that app route
// handlers that import it run without the `next` package. `apiroutes-node build` aliases
// `next/server` to this module, and the runtime resolves it for unbundled handlers.

/**
 * @typedef {{ name: string, value: string }} RequestCookie
 * @typedef {{ name: string, value: string, path?: string, domain?: string, maxAge?: number,
 *   expires?: Date | number | string, httpOnly?: boolean, secure?: boolean,
 *   sameSite?: 'strict' | 'lax' | 'none' | boolean, partitioned?: boolean }} ResponseCookie
 */

/** Read-only cookies of a request (`request.cookies`). */
export class RequestCookies {
  /** @param {Headers} headers */
  constructor(headers) {
    /** @type {Map<string, RequestCookie>} */
    this._parsed = new Map();
    const header = headers.get('cookie');
    if (header) {
      // Next's parser: `; `-separated, a bare name means "true", the last pair of a name
      // wins, and a pair whose value does not decode is skipped.
      for (const pair of header.split(/; */)) {
        if (!pair) continue;
        const eq = pair.indexOf('=');
        if (eq === -1) {
          this._parsed.set(pair, { name: pair, value: 'true' });
          continue;
        }
        const name = pair.slice(0, eq);
        try {
          this._parsed.set(name, { name, value: decodeURIComponent(pair.slice(eq + 1)) });
        } catch {}
      }
    }
  }
  get size() {
    return this._parsed.size;
  }
  /** @param {string | RequestCookie} name */
  get(name) {
    return this._parsed.get(typeof name === 'string' ? name : name.name);
  }
  /** @param {string | RequestCookie} [name] */
  getAll(name) {
    const all = [...this._parsed.values()];
    if (name === undefined) return all;
    const key = typeof name === 'string' ? name : name.name;
    return all.filter((c) => c.name === key);
  }
  /** @param {string} name */
  has(name) {
    return this._parsed.has(name);
  }
  toString() {
    return [...this._parsed.values()].map((c) => `${c.name}=${encodeURIComponent(c.value)}`).join('; ');
  }
}

/** Cookies to set on a response (`response.cookies`), written as Set-Cookie headers. */
export class ResponseCookies {
  /** @param {Headers} headers */
  constructor(headers) {
    this._headers = headers;
    /** @type {Map<string, ResponseCookie>} */
    this._cookies = new Map();
  }
  /** @param {string} name */
  get(name) {
    return this._cookies.get(name);
  }
  getAll() {
    return [...this._cookies.values()];
  }
  /** @param {string} name */
  has(name) {
    return this._cookies.has(name);
  }
  /**
   * @param {string | ResponseCookie} nameOrCookie
   * @param {string} [value]
   * @param {Omit<ResponseCookie, 'name' | 'value'>} [options]
   */
  set(nameOrCookie, value, options) {
    const cookie =
      typeof nameOrCookie === 'string' ? { ...options, name: nameOrCookie, value: value ?? '' } : { ...nameOrCookie };
    // As Next normalizes: a numeric expiry is a date, maxAge also sets Expires, Path defaults to /.
    if (typeof cookie.expires === 'number') cookie.expires = new Date(cookie.expires);
    if (typeof cookie.maxAge === 'number') cookie.expires = new Date(Date.now() + cookie.maxAge * 1000);
    if (cookie.path === undefined || cookie.path === null) cookie.path = '/';
    this._cookies.set(cookie.name, cookie);
    this._write();
    return this;
  }
  /** @param {string} name */
  delete(name) {
    return this.set({ name, value: '', path: '/', expires: new Date(0) });
  }
  _write() {
    this._headers.delete('set-cookie');
    for (const cookie of this._cookies.values()) this._headers.append('set-cookie', serializeCookie(cookie));
  }
}

/**
 * @param {ResponseCookie} c
 * @returns {string}
 */
export function serializeCookie(c) {
  const parts = [`${c.name}=${encodeURIComponent(c.value)}`];
  if (c.path) parts.push(`Path=${c.path}`);
  if (c.expires !== undefined) {
    const date = c.expires instanceof Date ? c.expires : new Date(c.expires);
    parts.push(`Expires=${date.toUTCString()}`);
  }
  if (typeof c.maxAge === 'number') parts.push(`Max-Age=${c.maxAge}`);
  if (c.domain) parts.push(`Domain=${c.domain}`);
  if (c.secure) parts.push('Secure');
  if (c.httpOnly) parts.push('HttpOnly');
  if (c.sameSite) parts.push(`SameSite=${c.sameSite === true ? 'strict' : c.sameSite}`);
  if (c.partitioned) parts.push('Partitioned');
  return parts.join('; ');
}

/** A Web Request with `nextUrl` and `cookies`, as Next passes to route handlers. */
export class NextRequest extends Request {
  /**
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   */
  constructor(input, init) {
    super(input, init);
    /** @type {URL} */
    this.nextUrl = new URL(this.url);
    /** @type {RequestCookies} */
    this.cookies = new RequestCookies(this.headers);
  }
}

/** A Web Response with Next's static helpers and `cookies`. */
export class NextResponse extends Response {
  /**
   * @param {BodyInit | null} [body]
   * @param {ResponseInit} [init]
   */
  constructor(body, init) {
    super(body, init);
    /** @type {ResponseCookies} */
    this.cookies = new ResponseCookies(this.headers);
  }
  /**
   * @param {unknown} body
   * @param {ResponseInit} [init]
   */
  static json(body, init) {
    const headers = new Headers(init?.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new NextResponse(JSON.stringify(body), { ...init, headers });
  }
  /**
   * @param {string | URL} url
   * @param {number | ResponseInit} [init]
   */
  static redirect(url, init) {
    const status = typeof init === 'number' ? init : (init?.status ?? 307);
    if (![301, 302, 303, 307, 308].includes(status)) {
      throw new RangeError('Failed to execute "redirect" on "response": Invalid status code');
    }
    const headers = new Headers(typeof init === 'object' ? init.headers : undefined);
    headers.set('Location', String(url));
    return new NextResponse(null, { ...(typeof init === 'object' ? init : {}), status, headers });
  }
  /** @param {ResponseInit} [init] */
  static next(init) {
    return new NextResponse(null, init);
  }
}

/**
 * `after(callback)`: runs the callback after the current work, errors logged.
 * @param {() => unknown} callback
 */
export function after(callback) {
  setImmediate(() => {
    Promise.resolve()
      .then(callback)
      .catch((err) => console.error(err));
  });
}
