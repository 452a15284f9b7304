// Where the runtime deliberately answers differently from `next start`, and why.
// Each entry excuses the matching difference lines of the conformance comparison; the
// README repeats this list.

/** @typedef {{ what: string, why: string, applies: (caseName: string, line: string) => boolean }} Difference */

const NEXT_ROUTER_VARY = 'rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch';

/** @type {Difference[]} */
export const DIFFERENCES = [
  {
    what: 'No response compression: `next start` adds `Vary: Accept-Encoding` (and gzips when asked); the runtime does not.',
    why: "Compression is the server's job, not the handler's; in apiroutes it belongs at the gateway/edge, and a function should not spend CPU on it.",
    applies: (_, line) => line.startsWith('header vary: next ["Accept-Encoding"] vs runtime null'),
  },
  {
    what: "Framing: where Next's compression layer turns a fixed-length answer into a chunked one, the runtime sends Content-Length.",
    why: 'Transfer framing is transport, not handler behaviour; the body bytes are compared and identical.',
    applies: (_, line) => /^header content-length: next null vs runtime \["\d+"\]$/.test(line),
  },
  {
    what: `App route answers carry no \`Vary: ${NEXT_ROUTER_VARY}\`.`,
    why: "Those are the cache keys of Next's client-side router for App Router pages; apiroutes serves no pages, so they would only fragment caches.",
    applies: (_, line) =>
      line === `header vary: next ["${NEXT_ROUTER_VARY}, Accept-Encoding"] vs runtime null` ||
      line === `header vary: next ["${NEXT_ROUTER_VARY}"] vs runtime null`,
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
    what: "A body over the route's `spec.bodyLimit` (the handler's `bodyParser.sizeLimit`, or Next's 1mb default) is refused by the gateway: the same 413, but with its JSON error body (`payload_too_large`) and the standard reason phrase, where Next answers text `Body exceeded <limit> limit`.",
    why: 'DESIGN.md (ApiRoute `bodyLimit`: \"request body cap (413 over it)\") has the gateway enforce the cap before a request reaches, or wakes, a function; the runtime keeps Next\'s own check for bodies that arrive anyway.',
    applies: (name, line) =>
      name.startsWith('size:') &&
      (/^status text: next "Body exceeded \S+ limit" vs runtime "Payload Too Large"$/.test(line) ||
        line === 'header content-type: next null vs runtime ["application/json"]' ||
        /^body:\n\s+next {4}Body exceeded \S+ limit\n\s+runtime \{"error":"payload_too_large",/.test(line)),
  },
  {
    what: "An app route's request headers: the gateway drops the client's hop-by-hop `connection` header and adds `x-request-id`.",
    why: 'DESIGN.md, "Gateway → function contract": headers are forwarded minus hop-by-hop ones, and the gateway adds `x-request-id` (kept if present). Only those two names may differ.',
    applies: (name, line) => {
      if (name !== 'request headers an app route sees') return false;
      if (/^header (etag|content-length):/.test(line)) return true;
      const m = /^body:\n\s+next {4}(.*)\n\s+runtime (.*)$/.exec(line);
      if (!m) return false;
      try {
        const next = JSON.parse(m[1]).names.filter((/** @type {string} */ n) => n !== 'connection');
        const runtime = JSON.parse(m[2]).names.filter((/** @type {string} */ n) => n !== 'x-request-id');
        return JSON.stringify(next) === JSON.stringify(runtime);
      } catch {
        return false;
      }
    },
  },
];
