// The requests both sides get. Each is sent raw (method and target byte for byte).

/** @typedef {{ method: string, target: string, group: string }} Case */

/** @type {Case[]} */
export const CASES = [];

/** @param {string} group @param {string[]} targets @param {string} [method] */
function add(group, targets, method = 'GET') {
  for (const target of targets) CASES.push({ group, method, target });
}

// Every route file reached by a plain path.
add('routes', [
  '/api', '/api/hello', '/api/hello-world', '/api/Case/Sensitive', '/api/files/readme.md',
  '/api/users', '/api/users/me', '/api/users/new', '/api/users/me/settings',
  '/api/users/42', '/api/users/42/settings', '/api/users/42/posts', '/api/users/42/posts/latest',
  '/api/users/42/posts/7', '/api/users/42/files/a', '/api/users/42/files/a/b/c.txt',
  '/api/blog/featured', '/api/blog/hello-world', '/api/blog/hello-world/comments',
  '/api/blog/hello-world/comments/9', '/api/news', '/api/news/about', '/api/news/today',
  '/api/news/today/a', '/api/news/today/a/b/c', '/api/docs', '/api/docs/intro', '/api/docs/a',
  '/api/docs/a/b/c', '/api/files/x/meta', '/api/files/x', '/api/files/x/y/z', '/api/shop/cart',
  '/api/shop', '/api/shop/a', '/api/shop/a/b', '/api/v1/status', '/api/v1', '/api/v1/a/b',
  '/api/opt', '/api/opt/x', '/api/opt/x/y/z', '/api/a/b/c', '/api/a/q/d', '/api/a/q/r/e',
  '/api/deep/1/2/3/4', '/api/deep/x/y/z/w',
]);

// Precedence: static beats dynamic beats catch-all, per segment, with backtracking.
add('precedence', [
  '/api/users/me/posts', // static `me` has no `posts` child: back to [id]
  '/api/users/new/settings', // `new` has no children at all: [id]/settings
  '/api/users/me/settings/x', // nothing fits below either: [section]? no, 404
  '/api/users/42/posts/latest/x', '/api/users/42/files', // catch-all needs one segment
  '/api/blog/featured/comments', // static leaf vs [slug]/comments
  '/api/blog/featured/comments/1',
  '/api/a/b/d', // a/b has only `c`: back to a/[x]/d
  '/api/a/b/c/d', '/api/a/b/x/e', '/api/a/b', // a/b is no route: [section]/[item]
  '/api/a', // static folder `a` has no index: [section]
  '/api/deep/x/y/z', '/api/deep/x/y/z/v', '/api/deep/x/y/z/w/v',
  '/api/docs/intro/more', '/api/files/readme.md/meta', '/api/files/readme.md/x',
  '/api/files/meta', '/api/files/x/meta/y', '/api/shop/cart/x', '/api/v1/status/x',
  '/api/hello/x', '/api/hello/x/y', '/api/hello/x/y/z', '/api/users/42/x/y',
  '/api/users/42/posts/7/x', '/api/blog/x/comments/1/2', '/api/Case/sensitive', '/api/case/Sensitive',
  '/api/HELLO', '/api/files', '/api/blog',
]);

// Trailing slashes and repeated slashes: 308 to the cleaned path, query kept.
add('slashes', [
  '/api/', '/api/hello/', '/api/hello//', '/api//hello', '/api///hello', '//api/hello',
  '///api/hello', '/api/users//42', '/api/users/42/', '/api/docs/a//b', '/api/docs/a/b/',
  '/api/shop/', '/api/opt/', '/api/hello/?a=1&b=2', '/api//hello?x=1', '/api/users//42/?q=%2F',
  '//', '/', '/api\\hello', '/api/users\\42',
]);

// Dot segments, literal and encoded: removed before matching.
add('dots', [
  '/api/users/../hello', '/api/users/..', '/api/users/.', '/api/./hello', '/api/hello/.',
  '/api/%2e/hello', '/api/%2E%2E/api/hello', '/api/users/%2e%2e/hello', '/api/users/.%2e/hello',
  '/api/users/%2E./hello', '/api/users/%2e', '/api/docs/a/../../hello', '/api/../../../api/hello',
  '/api/docs/%2e%2e', '/api/docs/a/./b', '/api/users/42/posts/../settings', '/api/users/...',
  '/api/hello.', '/api/.hidden', '/api/users/a%2f..%2fb', '/api/users/%2e%2e%2fhello',
  '/../api/hello', '/api/users/../../api/users/me', '/api/docs/a/b/..', '/api/docs/a/b/../',
]);

// Percent-encoding: static segments compare undecoded, values are decoded after matching.
add('encoding', [
  '/api/users/a%2Fb', '/api/users/%2F', '/api/users/%2F%2F', '/api/users/caf%C3%A9',
  '/api/users/%E2%9C%93', '/api/users/%F0%9F%98%80', '/api/users/a%20b', '/api/users/a+b',
  '/api/users/%25', '/api/users/%2525', '/api/users/%zz', '/api/users/%E9', '/api/users/%C3',
  '/api/users/%', '/api/users/a%2', '/api/h%65llo', '/api/hello%2F', '/api/%2Fhello',
  '/api%2Fhello', '/api/users/%6De', '/api/docs/a%2Fb/c', '/api/docs/%2F/%2F',
  '/api/shop/%5B%5B...path%5D%5D', '/api/users/[id]', '/api/users/a;b', "/api/users/a'b",
  '/api/users/@me', '/api/users/a:b', '/api/users/~x', '/api/users/%00', '/api/files/readme%2Emd',
]);

// Query strings, including keys that collide with parameter names.
add('query', [
  '/api/hello?x=1', '/api/hello?a=1&a=2', '/api/hello?', '/api?x', '/api/users/1?id=2',
  '/api/users/1?id=2&id=3', '/api/shop?path=q', '/api/shop/a/b?path=q', '/api/opt?all=1&all=2',
  '/api/docs/a?slug=b', '/api/users/42/posts/7?postId=x&id=y', '/api/hello?q=%2F%2E%2E',
  '/api/users/1?%zz=1', '/api/hello?x=%zz',
]);

// Unknown paths.
add('unknown', ['/nope', '/API/hello', '/apix', '/api-hello', '/index', '/api/index', '/_next/x', '/favicon.ico']);

// Methods: Next has no method routing; every method reaches the handler.
for (const method of ['HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']) {
  add('methods', ['/api/hello', '/api/users/42', '/api/docs/a/b', '/api/hello/', '/nope'], method);
}

// next.config `trailingSlash: true` (the same route files built into trailing-slash/, the
// gateway's routes with `spec.trailingSlash`): every path both without and with its slash,
// with a query, and the slash, dot, encoding and method cases again.
/** @type {(Case & { unmatched?: boolean })[]} */
export const TRAILING_SLASH_CASES = [];
{
  const group = 'trailing-slash';
  const bases = [
    '/api', '/api/hello', '/api/users/42', '/api/users/me/settings', '/api/docs', '/api/docs/a/b/c',
    '/api/opt', '/api/opt/x', '/api/shop/a/b', '/api/files/x/y/z', '/api/files/readme.md',
    '/api/users/caf%C3%A9', '/api/users/a%2Fb', '/api/users/a+b', '/api/users/a.b', '/api/users/a.b-c',
    '/api/users/x.JSON', '/api/users/.env', '/api/users/a%2Ejson', '/api/v1.2/status', '/api/hello.',
  ];
  for (const base of bases) {
    for (const target of [base, `${base}/`, `${base}?b&a=%2F+1&constructor=x`, `${base}/?q=%2F&q=2`]) {
      TRAILING_SLASH_CASES.push({ group, method: 'GET', target });
    }
  }
  for (const target of [
    '/api//hello', '/api/hello//', '/api//hello//?a+b', '//api/hello/', '/api\\hello',
    '/api/users/../hello', '/api/users/..', '/api/hello/.', '/api/docs/a/b/..', '/api/docs/a/b/../',
    '/api/users/%2e%2e/hello/', '/api/users/%zz/', '/api/users/%E9/', '/', '/api?', '/api/?',
    '/api/users/me/settings/x', '/api/users/me/settings/x/',
    '/api/hello?', '/api/hello/?',
  ]) {
    TRAILING_SLASH_CASES.push({ group, method: 'GET', target });
  }
  for (const method of ['HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS']) {
    for (const target of ['/api/hello', '/api/hello/', '/api/users/42?x=1', '/api/users/42/?x=1']) {
      TRAILING_SLASH_CASES.push({ group, method, target });
    }
  }
  // Paths no route matches, or with a malformed escape: the gateway cannot know the app's
  // setting (differences.mjs, `trailing-slash-unmatched`).
  for (const target of [
    '/nope', '/nope/', '/API/hello', '/API/hello/', '/apix', '/apix/', '/api-hello/?a=1',
    '/api/users/%zz', '/api/users/%E9', '/api/users/a%2',
  ]) {
    TRAILING_SLASH_CASES.push({ group, method: 'GET', target, unmatched: true });
  }
  // Next answers a file-like unmatched path (a dot in the last segment) without a redirect.
  TRAILING_SLASH_CASES.push({ group, method: 'GET', target: '/favicon.ico' });
}
