// A stand-in for `next/navigation` as route handlers get it (Next's `react-server` build of
// the module): redirect(), permanentRedirect(), notFound(), forbidden(), unauthorized()
// throw errors carrying Next's `digest`, which the app route adapter turns into Next's
// answers (see `navigationResponse` in app.js). Ported from Next.js 16.4.6 (MIT).

import { requestStore } from './request-store.js';

const REDIRECT_ERROR_CODE = 'NEXT_REDIRECT';
const HTTP_ERROR_FALLBACK_ERROR_CODE = 'NEXT_HTTP_ERROR_FALLBACK';
const REDIRECT_STATUS = /** @type {const} */ ({ SeeOther: 303, TemporaryRedirect: 307, PermanentRedirect: 308 });
const ACCESS_STATUS = new Set([404, 403, 401]);

export const RedirectType = { push: 'push', replace: 'replace' };

/**
 * @param {string} url
 * @param {string} type
 * @param {number} statusCode
 */
function getRedirectError(url, type, statusCode) {
  const error = /** @type {Error & { digest: string }} */ (new Error(REDIRECT_ERROR_CODE));
  error.digest = `${REDIRECT_ERROR_CODE};${type};${url};${statusCode};`;
  return error;
}

/**
 * Ends the handler with a 307 to `url` (303 when the request is a possible Server Action
 * submission: a form POST or one with a `next-action` header).
 * @param {string} url
 * @param {'push' | 'replace'} [type]
 * @returns {never}
 */
export function redirect(url, type) {
  type ??= requestStore.getStore()?.isAction ? 'push' : 'replace';
  throw getRedirectError(url, type, REDIRECT_STATUS.TemporaryRedirect);
}

/**
 * Ends the handler with a 308 to `url` (303 for a possible Server Action submission).
 * @param {string} url
 * @param {'push' | 'replace'} [type]
 * @returns {never}
 */
export function permanentRedirect(url, type = 'replace') {
  throw getRedirectError(url, type, REDIRECT_STATUS.PermanentRedirect);
}

/**
 * @param {number} status
 * @returns {never}
 */
function accessFallback(status) {
  const digest = `${HTTP_ERROR_FALLBACK_ERROR_CODE};${status}`;
  const error = /** @type {Error & { digest: string }} */ (new Error(digest));
  error.digest = digest;
  throw error;
}

/**
 * Ends the handler with an empty 404.
 * @returns {never}
 */
export function notFound() {
  accessFallback(404);
}

/**
 * Ends the handler with an empty 403. Experimental in Next: without
 * `experimental.authInterrupts` (here: env `__NEXT_EXPERIMENTAL_AUTH_INTERRUPTS`, the
 * variable Next's build inlines) it throws, which answers 500.
 * @returns {never}
 */
export function forbidden() {
  if (!process.env.__NEXT_EXPERIMENTAL_AUTH_INTERRUPTS) {
    throw new Error('`forbidden()` is experimental and only allowed to be enabled when `experimental.authInterrupts` is enabled.');
  }
  accessFallback(403);
}

/**
 * Ends the handler with an empty 401; experimental like {@link forbidden}.
 * @returns {never}
 */
export function unauthorized() {
  if (!process.env.__NEXT_EXPERIMENTAL_AUTH_INTERRUPTS) {
    throw new Error('`unauthorized()` is experimental and only allowed to be used when `experimental.authInterrupts` is enabled.');
  }
  accessFallback(401);
}

/**
 * Whether `error` is a redirect() / permanentRedirect() error.
 * @param {unknown} error
 * @returns {error is Error & { digest: string }}
 */
export function isRedirectError(error) {
  if (typeof error !== 'object' || error === null || !('digest' in error) || typeof error.digest !== 'string') return false;
  const digest = error.digest.split(';');
  const [errorCode, type] = digest;
  const status = Number(digest.at(-2));
  return (
    errorCode === REDIRECT_ERROR_CODE &&
    (type === 'replace' || type === 'push') &&
    !Number.isNaN(status) &&
    Object.values(REDIRECT_STATUS).includes(/** @type {any} */ (status))
  );
}

/**
 * Whether `error` is a notFound() / forbidden() / unauthorized() error.
 * @param {unknown} error
 * @returns {error is Error & { digest: string }}
 */
export function isHTTPAccessFallbackError(error) {
  if (typeof error !== 'object' || error === null || !('digest' in error) || typeof error.digest !== 'string') return false;
  const [prefix, httpStatus] = error.digest.split(';');
  return prefix === HTTP_ERROR_FALLBACK_ERROR_CODE && ACCESS_STATUS.has(Number(httpStatus));
}

/**
 * Rethrows the errors above (also when found as another error's `cause`), so that a
 * `try`/`catch` around them does not swallow them.
 * @param {unknown} error
 */
export function unstable_rethrow(error) {
  if (isRedirectError(error) || isHTTPAccessFallbackError(error)) throw error;
  if (error instanceof Error && 'cause' in error) unstable_rethrow(error.cause);
}

class ReadonlyURLSearchParamsError extends Error {
  constructor() {
    super(
      'Method unavailable on `ReadonlyURLSearchParams`. Read more: https://nextjs.org/docs/app/api-reference/functions/use-search-params#updating-searchparams',
    );
  }
}

/** URLSearchParams that cannot be changed. */
export class ReadonlyURLSearchParams extends URLSearchParams {
  /** @returns {never} */
  append() {
    throw new ReadonlyURLSearchParamsError();
  }
  /** @returns {never} */
  delete() {
    throw new ReadonlyURLSearchParamsError();
  }
  /** @returns {never} */
  set() {
    throw new ReadonlyURLSearchParamsError();
  }
  /** @returns {never} */
  sort() {
    throw new ReadonlyURLSearchParamsError();
  }
}

/** @returns {never} */
export function unstable_isUnrecognizedActionError() {
  throw new Error('`unstable_isUnrecognizedActionError` can only be used on the client.');
}

/**
 * The answer Next gives when a route handler throws one of the errors above, or `null`.
 * Redirects carry the cookies set through `cookies()`; the others are bare.
 * @param {unknown} error
 * @param {boolean} isAction
 * @returns {{ status: number, location?: string } | null}
 */
export function navigationAnswer(error, isAction) {
  if (isRedirectError(error)) {
    const digest = error.digest.split(';');
    const location = digest.slice(2, -2).join(';');
    return { status: isAction ? REDIRECT_STATUS.SeeOther : Number(digest.at(-2)), location };
  }
  if (isHTTPAccessFallbackError(error)) return { status: Number(error.digest.split(';')[1]) };
  return null;
}
