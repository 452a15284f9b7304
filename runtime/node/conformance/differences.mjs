// Where the runtime deliberately answers differently from `next start`, and why.
// Each entry excuses the matching difference lines of the conformance comparison; the
// README repeats this list.

/** @typedef {{ what: string, why: string, applies: (caseName: string, line: string) => boolean }} Difference */

import querystring from 'node:querystring';

/**
 * The Location of Next's 308 for a request target with repeated or trailing slashes (the
 * rule README gives the gateway):
 * - `//` or `\\` in the path: the target with `\\` → `/` and runs of `/` collapsed, the query
 *   as received;
 * - else a trailing slash: the path without it, and the query re-serialized: parsed with
 *   URLSearchParams into a plain object (repeated keys grouped in first-seen order; an
 *   inherited name such as `constructor` collects the inherited value, written empty), then
 *   written with Node's querystring.stringify (`%20` for spaces, `~!*()'` kept).
 * @param {string} target
 */
export function nextSlashRedirect(target) {
  const [pathPart, ...rest] = target.split('?');
  if (/(\\|\/\/)/.test(pathPart)) {
    return pathPart.replace(/\\/g, '/').replace(/\/\/+/g, '/') + (rest.length && rest[0] ? `?${rest.join('?')}` : '');
  }
  /** @type {Record<string, any>} */
  const query = {};
  for (const [key, value] of new URL(target, 'http://n').searchParams) {
    const existing = query[key];
    if (typeof existing === 'undefined') query[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else query[key] = [existing, value];
  }
  const qs = querystring.stringify(query);
  return pathPart.replace(/\/+$/, '') + (qs ? `?${qs}` : '');
}

/** The two clearing Set-Cookie lines of Preview Mode (as the comparison normalizes them). */
const CLEARS = ['__prerender_bypass', '__next_preview_data'].map(
  (name) => `${name}=<value>; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None`,
);

/**
 * A Set-Cookie difference that is only the gateway's placement of the clearing cookies for a
 * broken preview pair: the other cookies are the same and in the same order, and the
 * runtime's side has the two clearing lines first or last (or, where Next also set the
 * pair, not at all).
 * @param {string} line
 */
function onlyClearPlacement(line) {
  const m = /^header set-cookie: next (.*) vs runtime (.*)$/.exec(line);
  if (!m) return false;
  /** @type {string[]} */
  const next = JSON.parse(m[1]) ?? [];
  /** @type {string[]} */
  const runtime = JSON.parse(m[2]) ?? [];
  const others = (/** @type {string[]} */ list) => JSON.stringify(list.filter((c) => !CLEARS.includes(c)));
  if (others(next) !== others(runtime)) return false;
  const clears = JSON.stringify(CLEARS);
  // At the head (the runtime clears where Next does, flagged by the gateway's
  // `x-apiroute-preview-invalid`), at the tail (after a handler's own list), or not at all.
  return (
    JSON.stringify(runtime.slice(0, 2)) === clears ||
    JSON.stringify(runtime.slice(-2)) === clears ||
    !runtime.some((c) => CLEARS.includes(c))
  );
}

/**
 * A globals probe difference that is only the markers the runtime leaves out on purpose.
 * @param {string} line
 * @param {boolean} edge
 */
function onlyOmittedGlobals(line, edge) {
  const m = /^body:\n\s+next {4}(.*)\n\s+runtime (.*)$/.exec(line);
  if (!m) return false;
  try {
    const next = JSON.parse(m[1]);
    const runtime = JSON.parse(m[2]);
    delete next.env.TURBOPACK;
    for (const key of Object.keys(next.globals)) {
      if (key.startsWith('Symbol(') || key === 'TURBOPACK' || key === '__next__clear_chunk_cache__') delete next.globals[key];
      if (edge && /^__next_(eval|webassembly_compile|webassembly_instantiate)__$/.test(key)) delete next.globals[key];
    }
    if (edge) {
      for (const key of ['__NEXT_BUILD_ID', 'NEXT_SERVER_ACTIONS_ENCRYPTION_KEY', '__NEXT_PREVIEW_MODE_ID', '__NEXT_PREVIEW_MODE_ENCRYPTION_KEY', '__NEXT_PREVIEW_MODE_SIGNING_KEY']) {
        delete next.env[key];
      }
    }
    return JSON.stringify(next) === JSON.stringify(runtime);
  } catch {
    return false;
  }
}

/** @type {Difference[]} */
export const DIFFERENCES = [
  {
    what: "Framing: the gateway's own answers (308 redirects, 413s) carry Content-Length where `next start` sends them chunked.",
    why: 'Transfer framing is transport, not handler behaviour; the body bytes are compared and identical.',
    applies: (_, line) => /^header content-length: next null vs runtime \["\d+"\]$/.test(line),
  },
  {
    what: "Preview cookies hold the gateway's own signed value, so a handler that echoes them sees other bytes (ETag and Content-Length follow).",
    why: 'The runtime never holds the signing key (DESIGN.md, Preview Mode); names and attributes of the cookies are the same and compared.',
    applies: (name, line) => name.startsWith('preview:') && /^header (etag|content-length):/.test(line),
  },
  {
    what: "Enabling Draft Mode (`res.setDraftMode()`, `draftMode().enable()`) sets both preview cookies (data `{}`) where Next sets only `__prerender_bypass`; disabling clears both. A handler that lists the request's cookie names therefore also sees `__next_preview_data`.",
    why: 'The gateway contract has one preview state; handlers then see what Next gives them in Draft Mode (`req.preview === true`, `req.previewData` `{}`, `draftMode().isEnabled`), which the following cases compare.',
    applies: (name, line) =>
      (name.startsWith('preview: draft mode') && line.startsWith('header set-cookie:')) ||
      (name === 'preview: draft mode via next/headers, then isEnabled' && /^(header (etag|content-length):|body:)/.test(line)),
  },
  {
    what: "An app route's `request.url` has the public host (X-Forwarded-Host from the gateway, else Host); Next uses its own listen address (`localhost:<port>`).",
    why: 'Behind the gateway the listen address is a pod address that clients cannot reach; absolute URLs built from request.url (redirects) must point at the public host, as on Vercel.',
    applies: (name, line) => name === 'app: NextResponse.redirect from form' && line.startsWith('header location:'),
  },
  {
    what: "The gateway's `x-forwarded-host`/`-proto` (and `-for`) are real request headers, so they also appear in `req.rawHeaders`; Next adds them to `req.headers` only.",
    why: 'A proxy in front of the function must pass the client scheme and host; `req.headers` shows the same names as on Next.',
    applies: (name, line) => name === 'request headers a pages handler sees' && /^(header (etag|content-length):|body:)/.test(line),
  },
  {
    what: "A body over the route's `spec.bodyLimit` is refused by the gateway with Next's 413 (`Body exceeded <limit> limit`, reason phrase and body), the limit written in the `bytes` package's format (`1mb`, `2kb`). For a `sizeLimit` given as a number, Next writes the number as given (`Body exceeded 100 limit`) where the gateway writes `100b`.",
    why: 'DESIGN.md (ApiRoute `bodyLimit`: \"request body cap (413 over it)\") has the gateway enforce the cap before a request reaches, or wakes, a function; the route carries the limit in bytes, not how the handler wrote it (docs/gateway.md).',
    applies: (name, line) =>
      name.startsWith('size:') &&
      (/^status text: next "Body exceeded (\d+) limit" vs runtime "Body exceeded \1b limit"$/.test(line) ||
        /^body:\n\s+next {4}Body exceeded (\d+) limit\n\s+runtime Body exceeded \1b limit$/.test(line)),
  },
  {
    what: "An app route's request headers: the gateway drops the client's hop-by-hop `connection` header and adds `x-request-id` and `traceparent`.",
    why: 'DESIGN.md, "Gateway → function contract": headers are forwarded minus hop-by-hop ones, and the gateway adds `x-request-id` (kept if present) and a W3C `traceparent` naming its own span as the parent (docs/gateway.md, "Trace context"). Only those names may differ.',
    applies: (name, line) => {
      if (name !== 'request headers an app route sees') return false;
      if (/^header (etag|content-length):/.test(line)) return true;
      const m = /^body:\n\s+next {4}(.*)\n\s+runtime (.*)$/.exec(line);
      if (!m) return false;
      try {
        const next = JSON.parse(m[1]).names.filter((/** @type {string} */ n) => n !== 'connection');
        const runtime = JSON.parse(m[2]).names.filter(
          (/** @type {string} */ n) => n !== 'x-request-id' && n !== 'traceparent',
        );
        return JSON.stringify(next) === JSON.stringify(runtime);
      } catch {
        return false;
      }
    },
  },
  {
    what: "A pages handler that makes a 1xx status its final answer (`res.status(103).end()`, `res.writeHead(102)`) gets `500 Internal Server Error` (text and body, no handler headers) and the error is logged; `next start` writes the 1xx head and then no final response, so the client waits until the connection closes.",
    why: 'A 1xx is not a final HTTP response: behind a proxy the request would hang until a timeout. Answering 500 names the handler bug at once. App Routes need nothing: `new Response(null, {status: 103})` throws in both, and both answer 500.',
    applies: (name, line) =>
      /^1xx: pages (status-|writehead-)/.test(name) &&
      (/^status: next 1\d\d vs runtime 500$/.test(line) ||
        /^status text: next "[^"]*" vs runtime "Internal Server Error"$/.test(line) ||
        line === 'header :final-response: next ["none"] vs runtime null' ||
        /^header [a-z-]+: next \[.*\] vs runtime (null|\["\d+"\])$/.test(line) ||
        /^body:\n\s+next {4}\n\s+runtime Internal Server Error$/.test(line)),
  },
  {
    what: '`res.writeEarlyHints()` heads (103 Early Hints) do not reach the client; the final answer does.',
    why: 'The gateway (hyper) does not forward informational responses from a function; the runtime sends them (README gives what the gateway must forward).',
    applies: (name, line) => name === '1xx: pages early-hints' && /^header :informational: next \["103 Early Hints .*"\] vs runtime null$/.test(line),
  },
  {
    what: "A broken preview cookie pair (one of the two cookies, or a pair that does not verify): the two clearing cookies may sit first or last among otherwise identical Set-Cookie lines.",
    why: 'Only the gateway can verify the pair: it flags a broken one with `x-apiroute-preview-invalid: 1` and the runtime clears it where Next does (CONTRACT.md); this entry admits only a different position of the same two lines.',
    applies: (name, line) => name.startsWith('preview: lone ') && onlyClearPlacement(line),
  },
  {
    what: "A `__prerender_bypass` cookie alone is never Draft Mode: Next treats a lone bypass cookie equal to its build's preview id as Draft Mode (`req.preview`, `draftMode().isEnabled`); the gateway treats it as a broken pair and clears it.",
    why: "The gateway's bypass value is bound to its data cookie (DESIGN.md, Preview Mode) and cannot be checked alone; the gateway always issues both cookies, so only a client that dropped one sends a lone bypass.",
    applies: (name, line) =>
      name.startsWith('preview: lone bypass cookie of a valid pair') &&
      (onlyClearPlacement(line) ||
        /^body:\n\s+next {4}\{"content":"draft","previewData":\{\},"draftMode":true\}\n\s+runtime \{"content":"published","previewData":false\}$/.test(line) ||
        /^body:\n\s+next {4}(.*)"draft":true\}\n\s+runtime \1"draft":false\}$/.test(line) ||
        /^header (etag|content-length):/.test(line)),
  },
  {
    what: "Turbopack's runtime (`TURBOPACK`, `__next__clear_chunk_cache__`, env `TURBOPACK=1`) and Next's internal singletons (`Symbol.for('@next/…-async-storage@16.4.6')` and the like) are not defined; in Edge API routes neither are the edge sandbox's helpers (`__next_eval__`, `__next_webassembly_*__`) nor the secrets and build id Next copies into their environment (`__NEXT_PREVIEW_MODE_*`, `NEXT_SERVER_ACTIONS_ENCRYPTION_KEY`, `__NEXT_BUILD_ID`). Every other marker is the same (`NEXT_RUNTIME`, `NEXT_DEPLOYMENT_ID`, `__NEXT_PRIVATE_ORIGIN`, `NEXT_PRIVATE_START_TIME`, `__NEXT_PROCESSED_ENV`, `NEXT_CLIENT_ASSET_SUFFIX`, `__NEXT_HTTP_AGENT*`, `AsyncLocalStorage`, `EdgeRuntime`, …).",
    why: 'Handlers are bundled by esbuild, not Turbopack, and the stand-ins keep their own state: code that found these would call into a bundler or Next internals that are not there. The runtime holds no preview keys (DESIGN.md, Preview Mode).',
    applies: (name, line) =>
      name.startsWith('globals: ') && (onlyOmittedGlobals(line, name === 'globals: edge route') || /^header (etag|content-length):/.test(line)),
  },
];