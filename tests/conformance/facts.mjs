// DESIGN.md's "Facts measured on Next.js 16.4.6", one request each, checked against the live
// Next.js server on every run: if one fails, DESIGN.md (and so the gateway) is wrong.
// `design: false` marks facts measured here that DESIGN.md does not state.

/**
 * @typedef {{ fact: string, design?: boolean, method?: string, target: string,
 *   status?: number, location?: string, route?: string, params?: Record<string, string | string[]>, query?: Record<string, unknown>, path?: string }} Fact
 */

/** @type {Fact[]} */
export const FACTS = [
  { fact: 'precedence is per segment with full backtracking', target: '/api/a/b/d', route: '/api/a/[x]/d', params: { x: 'b' } },
  { fact: 'a static route does not block deeper paths through a dynamic sibling', target: '/api/users/me/posts', route: '/api/users/[id]/posts', params: { id: 'me' } },
  { fact: 'an optional catch-all with zero segments leaves its parameter absent', target: '/api/opt', route: '/api/opt/[[...all]]', params: {} },
  { fact: 'a required catch-all never matches zero segments', target: '/api/users/42/files', route: '/api/[section]/[item]/[...rest]', params: { section: 'users', item: '42', rest: ['files'] } },
  { fact: 'static segments compare undecoded', target: '/api/h%65llo', route: '/api/[section]', params: { section: 'hello' } },
  { fact: 'parameter values are percent-decoded after matching (%2F becomes /)', target: '/api/users/a%2Fb', route: '/api/users/[id]', params: { id: 'a/b' }, path: '/api/users/a%2Fb' },
  { fact: 'matching is case-sensitive', target: '/api/HELLO', route: '/api/[section]', params: { section: 'HELLO' } },
  { fact: 'a trailing slash gets a 308 to the cleaned path, query kept', target: '/api/hello/?a=1&b=2', status: 308, location: '/api/hello?a=1&b=2' },
  { fact: 'repeated slashes get a 308 to the cleaned path, query kept', target: '/api//hello?x=1', status: 308, location: '/api/hello?x=1' },
  { fact: 'a malformed escape (%zz) is a 400', target: '/api/users/%zz', status: 400 },
  { fact: 'dot segments are removed before matching; the function sees the normalized path', target: '/api/users/../hello', route: '/api/hello', params: {}, path: '/api/hello' },
  { fact: '%2e-encoded dot segments are removed too', target: '/api/users/%2e%2e/hello', route: '/api/hello', params: {}, path: '/api/hello' },
  { fact: '/api/users/.. becomes /api/, which gets the trailing-slash 308 to /api', target: '/api/users/..', status: 308, location: '/api' },
  { fact: 'an absolute-form target is redirected by Next (the gateway routes it by path instead)', target: 'http://example.com/api/hello', status: 308, location: 'http://example.com/api/hello' },
  // Measured here, not in DESIGN.md.
  { design: false, fact: 'a backslash in the path is a slash to Next: 308 to the cleaned path', target: '/api\\hello', status: 308, location: '/api/hello' },
  { design: false, fact: 'leading repeated slashes get the same 308', target: '//api/hello', status: 308, location: '/api/hello' },
  { design: false, fact: 'repeated slashes are collapsed first, a trailing slash kept (two 308s: //x// -> /x/ -> /x)', target: '/api/hello//', status: 308, location: '/api/hello/' },
  { design: false, fact: 'the repeated-slash 308 keeps a trailing slash and the query', target: '/api/users//42/?q=%2F', status: 308, location: '/api/users/42/?q=%2F' },
  { design: false, fact: 'the root of the site answers 404 (no page), and // redirects to it', target: '//', status: 308, location: '/' },
  { design: false, fact: 'an optional catch-all whose query key repeats is still absent (the key shows through as an array)', target: '/api/opt?all=1&all=2', route: '/api/opt/[[...all]]', params: {}, query: { all: ['1', '2'] } },
  { design: false, fact: 'an escape that decodes to invalid UTF-8 is a 400', target: '/api/users/%E9', status: 400 },
  { design: false, fact: 'mixed-case %2E. is a dot segment', target: '/api/users/%2E./hello', route: '/api/hello', params: {} },
  { design: false, fact: '%2F inside a segment is not a separator for dot removal', target: '/api/users/a%2f..%2fb', route: '/api/users/[id]', params: { id: 'a/../b' } },
  { design: false, fact: 'a parameter wins over a query key of the same name', target: '/api/users/1?id=2&id=3', route: '/api/users/[id]', params: { id: '1' } },
  { design: false, fact: 'an absent optional catch-all lets a same-named query key show through req.query', target: '/api/shop?path=q', route: '/api/shop/[[...path]]', query: { path: 'q' } },
];
