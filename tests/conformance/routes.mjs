// The route list both sides are built from: each entry is one Next.js `pages/api` route
// file, named by its pattern. `index: true` writes it as `<folder>/index.js` (Next maps an
// index file to its folder); otherwise `<last segment>.js`.
//
// Next.js refuses some trees at build time, so the list keeps to what it accepts: one
// parameter name per dynamic position, no optional catch-all beside an index file or a
// required catch-all at the same level.

/** @typedef {{ pattern: string, index?: boolean }} Route */

/** @type {Route[]} */
export const ROUTES = [
  // Static, index files, siblings.
  { pattern: '/api', index: true },
  { pattern: '/api/hello' },
  { pattern: '/api/hello-world' },
  { pattern: '/api/Case/Sensitive' },
  { pattern: '/api/files/readme.md' },
  { pattern: '/api/users', index: true },
  { pattern: '/api/users/me' },
  { pattern: '/api/users/new' },
  { pattern: '/api/users/me/settings' },
  // Dynamic and nested dynamic beside static siblings.
  { pattern: '/api/users/[id]' },
  { pattern: '/api/users/[id]/settings' },
  { pattern: '/api/users/[id]/posts', index: true },
  { pattern: '/api/users/[id]/posts/latest' },
  { pattern: '/api/users/[id]/posts/[postId]' },
  { pattern: '/api/users/[id]/files/[...path]' },
  { pattern: '/api/blog/featured' },
  { pattern: '/api/blog/[slug]' },
  { pattern: '/api/blog/[slug]/comments', index: true },
  { pattern: '/api/blog/[slug]/comments/[commentId]' },
  // A dynamic segment right under /api: everything static above must be tried first.
  { pattern: '/api/[section]' },
  { pattern: '/api/[section]/about' },
  { pattern: '/api/[section]/[item]' },
  { pattern: '/api/[section]/[item]/[...rest]' },
  // Catch-alls.
  { pattern: '/api/docs', index: true },
  { pattern: '/api/docs/intro' },
  { pattern: '/api/docs/[...slug]' },
  { pattern: '/api/files/[dir]/meta' },
  { pattern: '/api/files/[...path]' },
  // Optional catch-alls (no index file beside them: Next refuses that).
  { pattern: '/api/shop/cart' },
  { pattern: '/api/shop/[[...path]]' },
  { pattern: '/api/v1/status' },
  { pattern: '/api/v1/[[...rest]]' },
  { pattern: '/api/opt/[[...all]]' },
  // Backtracking: a static branch that dead-ends falls back to a dynamic sibling above.
  { pattern: '/api/a/b/c' },
  { pattern: '/api/a/[x]/d' },
  { pattern: '/api/a/[x]/[y]/e' },
  { pattern: '/api/deep/[a]/[b]/[c]/[d]' },
  { pattern: '/api/deep/x/y/z/w' },
];

/** Parameter names of a pattern with their kind. */
export function paramsOf(pattern) {
  /** @type {{ name: string, kind: 'one' | 'many' | 'optional' }[]} */
  const out = [];
  for (const seg of pattern.split('/')) {
    let m;
    if ((m = /^\[\[\.\.\.(.+)\]\]$/.exec(seg))) out.push({ name: m[1], kind: 'optional' });
    else if ((m = /^\[\.\.\.(.+)\]$/.exec(seg))) out.push({ name: m[1], kind: 'many' });
    else if ((m = /^\[(.+)\]$/.exec(seg))) out.push({ name: m[1], kind: 'one' });
  }
  return out;
}

/** `pages/...` file of a route. */
export function fileOf(route) {
  const rel = route.pattern.replace(/^\//, '');
  return route.index ? `pages/${rel}/index.js` : `pages/${rel}.js`;
}

/** A Kubernetes-safe name for a route's ApiRoute. */
export function nameOf(route, i) {
  const slug = route.pattern
    .toLowerCase()
    .replace(/\[+\.*|\]+/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return `r${String(i).padStart(2, '0')}-${slug}`.slice(0, 63).replace(/-$/, '');
}
