// A small stand-in for `next/server` (NextRequest, NextResponse) so that app route
// handlers that import it run without the `next` package. `apiroutes-node build` aliases
// `next/server` to this module, and the runtime resolves it for unbundled handlers.

import { RequestCookies, ResponseCookies, stringifyCookie } from './next-cookies.js';

export { RequestCookies, ResponseCookies, stringifyCookie };

/**
 * Next's check of a redirect target: an absolute URL, else an error.
 * @param {string | URL} url
 * @returns {string}
 */
function validateURL(url) {
  try {
    return String(new URL(String(url)));
  } catch (error) {
    throw new Error(
      `URL is malformed "${String(url)}". Please use only absolute URLs - https://nextjs.org/docs/messages/middleware-relative-urls`,
      { cause: error },
    );
  }
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
    const response = Response.json(body, init);
    return new NextResponse(response.body, response);
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
    headers.set('Location', validateURL(url));
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
