// The cookie classes of `next/server` (`request.cookies`, `response.cookies`) and of
// `next/headers` `cookies()`, ported from @edge-runtime/cookies 6.0.0 as Next.js 16.4.6
// bundles it (MIT), so that entries, attribute order and Set-Cookie order are Next's.

/**
 * @typedef {{ name: string, value: string }} RequestCookie
 * @typedef {{ name: string, value: string, path?: string, domain?: string, maxAge?: number,
 *   expires?: Date | number, httpOnly?: boolean, secure?: boolean,
 *   sameSite?: 'strict' | 'lax' | 'none' | boolean, partitioned?: boolean,
 *   priority?: 'low' | 'medium' | 'high' }} ResponseCookie
 */

/**
 * A cookie as one Set-Cookie value (or one `Cookie` pair when it has no attributes).
 * @param {Partial<ResponseCookie> & { name: string }} c
 * @returns {string}
 */
export function stringifyCookie(c) {
  const attrs = [
    'path' in c && c.path && `Path=${c.path}`,
    'expires' in c &&
      (c.expires || c.expires === 0) &&
      `Expires=${(typeof c.expires === 'number' ? new Date(c.expires) : /** @type {Date} */ (c.expires)).toUTCString()}`,
    'maxAge' in c && typeof c.maxAge === 'number' && `Max-Age=${c.maxAge}`,
    'domain' in c && c.domain && `Domain=${c.domain}`,
    'secure' in c && c.secure && 'Secure',
    'httpOnly' in c && c.httpOnly && 'HttpOnly',
    'sameSite' in c && c.sameSite && `SameSite=${c.sameSite}`,
    'partitioned' in c && c.partitioned && 'Partitioned',
    'priority' in c && c.priority && `Priority=${c.priority}`,
  ].filter(Boolean);
  const stringified = `${c.name}=${encodeURIComponent(c.value ?? '')}`;
  return attrs.length === 0 ? stringified : `${stringified}; ${attrs.join('; ')}`;
}

/**
 * A `Cookie` header (or a Set-Cookie value) as name → decoded value; a bare name is
 * `"true"`, a value that does not decode is skipped, the last pair of a name wins.
 * @param {string} cookie
 * @returns {Map<string, string>}
 */
export function parseCookie(cookie) {
  /** @type {Map<string, string>} */
  const map = new Map();
  for (const pair of cookie.split(/; */)) {
    if (!pair) continue;
    const splitAt = pair.indexOf('=');
    if (splitAt === -1) {
      map.set(pair, 'true');
      continue;
    }
    const [key, value] = [pair.slice(0, splitAt), pair.slice(splitAt + 1)];
    try {
      map.set(key, decodeURIComponent(value ?? 'true'));
    } catch {}
  }
  return map;
}

/**
 * @param {string} setCookie one Set-Cookie value
 * @returns {ResponseCookie | undefined}
 */
export function parseSetCookie(setCookie) {
  if (!setCookie) return undefined;
  const [[name, value], ...attributes] = parseCookie(setCookie);
  /** @type {Record<string, string>} */
  const attrs = Object.fromEntries(attributes.map(([key, v]) => [key.toLowerCase().replace(/-/g, ''), v]));
  const { domain, expires, httponly, maxage, path, samesite, secure, partitioned, priority } = attrs;
  const cookie = {
    name,
    value: decodeURIComponent(value),
    domain,
    ...(expires && { expires: new Date(expires) }),
    ...(httponly && { httpOnly: true }),
    ...(typeof maxage === 'string' && { maxAge: Number(maxage) }),
    path,
    ...(samesite && { sameSite: parseSameSite(samesite) }),
    ...(secure && { secure: true }),
    ...(priority && { priority: parsePriority(priority) }),
    ...(partitioned && { partitioned: true }),
  };
  return /** @type {ResponseCookie} */ (compact(cookie));
}

/**
 * @param {Record<string, unknown>} t
 * @returns {Record<string, unknown>}
 */
function compact(t) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const key in t) if (t[key]) out[key] = t[key];
  return out;
}

/** @param {string} s */
function parseSameSite(s) {
  s = s.toLowerCase();
  return ['strict', 'lax', 'none'].includes(s) ? s : undefined;
}

/** @param {string} s */
function parsePriority(s) {
  s = s.toLowerCase();
  return ['low', 'medium', 'high'].includes(s) ? s : undefined;
}

/**
 * Splits a Set-Cookie value that may hold several cookies joined by commas (the commas of
 * `Expires=Thu, 01 Jan …` are not separators).
 * @param {string} cookiesString
 * @returns {string[]}
 */
export function splitCookiesString(cookiesString) {
  if (!cookiesString) return [];
  /** @type {string[]} */
  const cookiesStrings = [];
  let pos = 0;
  /** @type {number} */
  let start;
  /** @type {string} */
  let ch;
  /** @type {number} */
  let lastComma;
  /** @type {number} */
  let nextStart;
  /** @type {boolean} */
  let cookiesSeparatorFound;
  const skipWhitespace = () => {
    while (pos < cookiesString.length && /\s/.test(cookiesString.charAt(pos))) pos += 1;
    return pos < cookiesString.length;
  };
  const notSpecialChar = () => {
    ch = cookiesString.charAt(pos);
    return ch !== '=' && ch !== ';' && ch !== ',';
  };
  while (pos < cookiesString.length) {
    start = pos;
    cookiesSeparatorFound = false;
    while (skipWhitespace()) {
      ch = cookiesString.charAt(pos);
      if (ch === ',') {
        lastComma = pos;
        pos += 1;
        skipWhitespace();
        nextStart = pos;
        while (pos < cookiesString.length && notSpecialChar()) pos += 1;
        if (pos < cookiesString.length && cookiesString.charAt(pos) === '=') {
          cookiesSeparatorFound = true;
          pos = nextStart;
          cookiesStrings.push(cookiesString.substring(start, lastComma));
          start = pos;
        } else {
          pos = lastComma + 1;
        }
      } else {
        pos += 1;
      }
    }
    if (!cookiesSeparatorFound || pos >= cookiesString.length) {
      cookiesStrings.push(cookiesString.substring(start, cookiesString.length));
    }
  }
  return cookiesStrings;
}

/** The cookies of a request (`request.cookies`); writes go back to its `cookie` header. */
export class RequestCookies {
  /** @param {Headers} requestHeaders */
  constructor(requestHeaders) {
    /** @type {Map<string, RequestCookie>} */
    this._parsed = new Map();
    this._headers = requestHeaders;
    const header = requestHeaders.get('cookie');
    if (header) {
      for (const [name, value] of parseCookie(header)) this._parsed.set(name, { name, value });
    }
  }
  [Symbol.iterator]() {
    return this._parsed[Symbol.iterator]();
  }
  /** The number of cookies the client sent. */
  get size() {
    return this._parsed.size;
  }
  /** @param {[string] | [RequestCookie]} args */
  get(...args) {
    const name = typeof args[0] === 'string' ? args[0] : args[0].name;
    return this._parsed.get(name);
  }
  /** @param {[] | [string] | [RequestCookie]} args */
  getAll(...args) {
    const all = Array.from(this._parsed);
    if (!args.length) return all.map(([, value]) => value);
    const name = typeof args[0] === 'string' ? args[0] : args[0]?.name;
    return all.filter(([n]) => n === name).map(([, value]) => value);
  }
  /** @param {string} name */
  has(name) {
    return this._parsed.has(name);
  }
  /** @param {[string, string] | [RequestCookie]} args */
  set(...args) {
    const [name, value] = args.length === 1 ? [args[0].name, args[0].value] : args;
    this._parsed.set(name, { name, value });
    this._headers.set('cookie', Array.from(this._parsed, ([, v]) => stringifyCookie(v)).join('; '));
    return this;
  }
  /**
   * @param {string | string[]} names
   * @returns {boolean | boolean[]}
   */
  delete(names) {
    const map = this._parsed;
    const result = !Array.isArray(names) ? map.delete(names) : names.map((name) => map.delete(name));
    this._headers.set('cookie', Array.from(map, ([, v]) => stringifyCookie(v)).join('; '));
    return result;
  }
  clear() {
    this.delete(Array.from(this._parsed.keys()));
    return this;
  }
  [Symbol.for('edge-runtime.inspect.custom')]() {
    return `RequestCookies ${JSON.stringify(Object.fromEntries(this._parsed))}`;
  }
  toString() {
    return [...this._parsed.values()].map((v) => `${v.name}=${encodeURIComponent(v.value)}`).join('; ');
  }
}

/** Cookies of a response (`response.cookies`), kept in its Set-Cookie headers. */
export class ResponseCookies {
  /** @param {Headers} responseHeaders */
  constructor(responseHeaders) {
    /** @type {Map<string, ResponseCookie>} */
    this._parsed = new Map();
    this._headers = responseHeaders;
    const setCookie = responseHeaders.getSetCookie?.() ?? responseHeaders.get('set-cookie') ?? [];
    const cookieStrings = Array.isArray(setCookie) ? setCookie : splitCookiesString(setCookie);
    for (const cookieString of cookieStrings) {
      const parsed = parseSetCookie(cookieString);
      if (parsed) this._parsed.set(parsed.name, parsed);
    }
  }
  /** @param {[string] | [ResponseCookie]} args */
  get(...args) {
    const key = typeof args[0] === 'string' ? args[0] : args[0].name;
    return this._parsed.get(key);
  }
  /** @param {[] | [string] | [ResponseCookie]} args */
  getAll(...args) {
    const all = Array.from(this._parsed.values());
    if (!args.length) return all;
    const key = typeof args[0] === 'string' ? args[0] : args[0]?.name;
    return all.filter((c) => c.name === key);
  }
  /** @param {string} name */
  has(name) {
    return this._parsed.has(name);
  }
  /**
   * @param {[string, string, Partial<ResponseCookie>?] | [ResponseCookie]} args
   * @returns {this}
   */
  set(...args) {
    const [name, value, cookie] = args.length === 1 ? [args[0].name, args[0].value, args[0]] : args;
    this._parsed.set(name, normalizeCookie({ name, value, ...cookie }));
    replace(this._parsed, this._headers);
    return this;
  }
  /**
   * @param {[string] | [Omit<ResponseCookie, 'value' | 'expires'>]} args
   * @returns {this}
   */
  delete(...args) {
    const [name, options] = typeof args[0] === 'string' ? [args[0]] : [args[0].name, args[0]];
    return this.set({ ...options, name, value: '', expires: new Date(0) });
  }
  [Symbol.for('edge-runtime.inspect.custom')]() {
    return `ResponseCookies ${JSON.stringify(Object.fromEntries(this._parsed))}`;
  }
  toString() {
    return [...this._parsed.values()].map(stringifyCookie).join('; ');
  }
}

/**
 * @param {Map<string, ResponseCookie>} bag
 * @param {Headers} headers
 */
function replace(bag, headers) {
  headers.delete('set-cookie');
  for (const [, value] of bag) headers.append('set-cookie', stringifyCookie(value));
}

/**
 * @param {ResponseCookie} cookie
 * @returns {ResponseCookie}
 */
function normalizeCookie(cookie) {
  if (typeof cookie.expires === 'number') cookie.expires = new Date(cookie.expires);
  if (cookie.maxAge) cookie.expires = new Date(Date.now() + cookie.maxAge * 1e3);
  if (cookie.path === null || cookie.path === undefined) cookie.path = '/';
  return cookie;
}

const MODIFIED = Symbol.for('next.mutated.cookies');

/**
 * `cookies()` of a route handler (Next's MutableRequestCookiesAdapter): a ResponseCookies
 * filled with the request's cookies (so entries carry `path: '/'`); the names it sets or
 * deletes are remembered, in the jar's order, for the response.
 * @param {RequestCookies} cookies
 * @returns {ResponseCookies}
 */
export function mutableRequestCookies(cookies) {
  const responseCookies = new ResponseCookies(new Headers());
  for (const cookie of cookies.getAll()) responseCookies.set(cookie);
  /** @type {ResponseCookie[]} */
  let modifiedValues = [];
  /** @type {Set<string>} */
  const modifiedCookies = new Set();
  const update = () => {
    modifiedValues = responseCookies.getAll().filter((c) => modifiedCookies.has(c.name));
  };
  /** @type {ResponseCookies} */
  const wrapped = new Proxy(responseCookies, {
    get(target, prop, receiver) {
      switch (prop) {
        case MODIFIED:
          return modifiedValues;
        case 'delete':
        case 'set':
          return (/** @type {any[]} */ ...args) => {
            modifiedCookies.add(typeof args[0] === 'string' ? args[0] : args[0].name);
            try {
              /** @type {any} */ (target)[prop](...args);
              return wrapped;
            } finally {
              update();
            }
          };
        default: {
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        }
      }
    },
  });
  return wrapped;
}

/**
 * Adds the cookies a handler set through `cookies()` to a response's headers, under its
 * own Set-Cookie cookies (which win and keep their places), as Next does. Every Set-Cookie
 * line is then re-serialized, one per name.
 * @param {Headers} headers
 * @param {ResponseCookies | undefined} mutable
 * @returns {boolean} whether anything was added
 */
export function appendMutableCookies(headers, mutable) {
  const modified = /** @type {ResponseCookie[] | undefined} */ (mutable && /** @type {any} */ (mutable)[MODIFIED]);
  if (!modified || !Array.isArray(modified) || modified.length === 0) return false;
  const resCookies = new ResponseCookies(headers);
  const returned = resCookies.getAll();
  for (const cookie of modified) resCookies.set(cookie);
  for (const cookie of returned) resCookies.set(cookie);
  return true;
}
