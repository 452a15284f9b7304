// The conformance request set: each case is sent to `next start` and to the runtime
// behind `apiroutes-gateway --static`, and the answers are compared.
//
// A case: { name, method?, path, headers?, body?, cookiesFrom?, onlyCookie?, etagFrom? }
//   cookiesFrom: send the cookies that an earlier case's response set (per side)
//   onlyCookie:  of those, send only the one with this name
//   etagFrom:    send If-None-Match with the ETag of an earlier case's response (per side)

const MB = 1024 * 1024;
const json = { 'content-type': 'application/json' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const text = { 'content-type': 'text/plain' };

/** A JSON document of exactly `size` bytes. */
function jsonOfSize(size) {
  const head = '{"pad":"';
  const tail = '"}';
  return head + 'x'.repeat(size - head.length - tail.length) + tail;
}

/** @type {Array<Record<string, any>>} */
export const cases = [];
const add = (c) => cases.push(c);

// --- bodies by content type (pages/api default body parser) -------------------------------
const bodies = [
  ['json object', json, '{"email":"a@b.c","n":1,"list":[1,2]}'],
  ['json array', json, '[1,"two",{"three":3}]'],
  ['json string literal', json, '"just text"'],
  ['json number', json, '42'],
  ['json null', json, 'null'],
  ['json empty', json, ''],
  ['json invalid', json, '{"broken":'],
  ['json trailing garbage', json, '{"a":1} x'],
  ['json with charset', { 'content-type': 'application/json; charset=utf-8' }, '{"ü":"ß"}'],
  ['json uppercase type', { 'content-type': 'Application/JSON' }, '{"upper":true}'],
  ['json with extra param', { 'content-type': 'application/json; foo=bar' }, '{"param":true}'],
  ['json quoted charset', { 'content-type': 'application/json; charset="utf-8"' }, '{"quoted":1}'],
  ['json malformed header', { 'content-type': 'application/json;;' }, '{"read":"as text"}'],
  ['json with BOM', json, '\ufeff{"bom":true}'],
  ['ld+json', { 'content-type': 'application/ld+json' }, '{"@context":"x"}'],
  ['vnd.api+json is text', { 'content-type': 'application/vnd.api+json' }, '{"data":null}'],
  ['form simple', form, 'email=a%40b.c&name=Ann'],
  ['form repeated keys', form, 'tag=a&tag=b&tag=c&one=1'],
  ['form plus and percent', form, 'q=hello+world%21&r=%2B'],
  ['form empty', form, ''],
  ['form key without value', form, 'flag&x=&=y'],
  ['form malformed escape', form, 'bad=%zz&ok=1'],
  ['form with charset', { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }, 'a=%C3%A9'],
  ['text plain', text, 'hello text'],
  ['text html', { 'content-type': 'text/html' }, '<b>bold</b>'],
  ['no content type', {}, 'untyped body'],
  ['octet-stream', { 'content-type': 'application/octet-stream' }, 'bytes as text'],
  ['multipart is raw text', { 'content-type': 'multipart/form-data; boundary=XyZ' },
    '--XyZ\r\ncontent-disposition: form-data; name="email"\r\n\r\na@b.c\r\n--XyZ--\r\n'],
  ['latin1 charset', { 'content-type': 'text/plain; charset=latin1' }, Buffer.from([0x63, 0x61, 0x66, 0xe9])],
  ['iso-8859-1 charset', { 'content-type': 'text/plain; charset=iso-8859-1' }, Buffer.from([0x6e, 0xe4, 0x69, 0x76, 0x65])],
  ['utf-16le charset', { 'content-type': 'text/plain; charset=utf-16le' }, Buffer.from('wide', 'utf16le')],
  ['unknown charset', { 'content-type': 'text/plain; charset=no-such-charset' }, 'x'],
  ['invalid utf-8 bytes', text, Buffer.from([0x61, 0xff, 0xfe, 0x62])],
  ['xml', { 'content-type': 'application/xml' }, '<a>1</a>'],
];
for (const [label, headers, body] of bodies) {
  add({ name: `body: ${label} (POST)`, method: 'POST', path: '/api/echo', headers, body });
}
add({ name: 'body: json via PUT', method: 'PUT', path: '/api/echo', headers: json, body: '{"put":true}' });
add({ name: 'body: json via PATCH', method: 'PATCH', path: '/api/echo', headers: json, body: '{"patch":true}' });
add({ name: 'body: json via DELETE', method: 'DELETE', path: '/api/echo', headers: json, body: '{"del":true}' });
add({ name: 'body: GET without body', path: '/api/echo' });
add({ name: 'body: GET with json type, no body', path: '/api/echo', headers: json });
add({ name: 'body: chunked upload', method: 'POST', path: '/api/echo', headers: json, body: '{"chunked":true}', chunked: true });

// --- size limits --------------------------------------------------------------------------
add({ name: 'size: default limit, exactly 1mb json', method: 'POST', path: '/api/echo', headers: json, body: jsonOfSize(MB), summarize: true });
add({ name: 'size: default limit, 1mb + 1 json', method: 'POST', path: '/api/echo', headers: json, body: jsonOfSize(MB + 1) });
add({ name: 'size: default limit, exactly 1mb text', method: 'POST', path: '/api/echo', headers: text, body: 'y'.repeat(MB), summarize: true });
add({ name: 'size: default limit, 1mb + 1 text', method: 'POST', path: '/api/echo', headers: text, body: 'y'.repeat(MB + 1) });
add({ name: 'size: default limit, 2mb form', method: 'POST', path: '/api/echo', headers: form, body: 'a=' + 'z'.repeat(2 * MB) });
add({ name: 'size: default limit, 1mb multibyte (bytes count)', method: 'POST', path: '/api/echo', headers: text, body: 'é'.repeat(MB / 2) + 'x' });
add({ name: 'size: 1kb limit, 1024 bytes', method: 'POST', path: '/api/small', headers: json, body: jsonOfSize(1024) });
add({ name: 'size: 1kb limit, 1025 bytes', method: 'POST', path: '/api/small', headers: json, body: jsonOfSize(1025) });
add({ name: 'size: 1kb limit, empty', method: 'POST', path: '/api/small', headers: json, body: '' });
add({ name: 'size: numeric 100 limit, 100 bytes', method: 'POST', path: '/api/numlimit', headers: text, body: 'n'.repeat(100) });
add({ name: 'size: numeric 100 limit, 101 bytes', method: 'POST', path: '/api/numlimit', headers: text, body: 'n'.repeat(101) });
add({ name: 'size: commonjs 2kb limit, 2048 bytes', method: 'POST', path: '/api/legacy', headers: text, body: 'c'.repeat(2048) });
add({ name: 'size: commonjs 2kb limit, 2049 bytes', method: 'POST', path: '/api/legacy', headers: text, body: 'c'.repeat(2049) });
add({ name: 'size: commonjs form body', method: 'POST', path: '/api/legacy', headers: form, body: 'email=legacy%40x.y' });

// --- bodyParser: false --------------------------------------------------------------------
add({ name: 'raw: binary body untouched', method: 'POST', path: '/api/raw', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([0, 1, 2, 255, 254, 10, 13]) });
add({ name: 'raw: invalid json untouched', method: 'POST', path: '/api/raw', headers: json, body: '{not json' });
add({ name: 'raw: 3mb passes (no limit)', method: 'POST', path: '/api/raw', headers: text, body: 'r'.repeat(3 * MB) });
add({ name: 'raw: empty', method: 'POST', path: '/api/raw' });
add({ name: 'raw: form stays raw', method: 'POST', path: '/api/raw', headers: form, body: 'a=1&b=2' });

// --- query strings ------------------------------------------------------------------------
const queries = [
  'a=1', 'a=1&a=2', 'a=1&b=2&a=3', 'a=', 'a', 'a[]=1&a[]=2', 'a.b=c', 'x=%20+%2B', 'x=%zz',
  'x=%E2%9C%93', 'x=%E0%A4%A', '__proto__=x', 'constructor=y&toString=z', 'nxtPfoo=1&keep=2',
  'nxtP=1', 'nxtIbar=2', 'nextInternalLocale=de&x=1', '_rsc=abc', '=empty-key', '&&a=1&&', 'a=1;b=2',
  'a==b', 'A=1&a=2', 'emoji=%F0%9F%98%80', 'q=' + 'long'.repeat(200), 'a=1&a=2&a=3&a=4',
];
for (const q of queries) add({ name: `query: ?${q.slice(0, 40)}`, path: `/api/echo?${q}` });
add({ name: 'query: forged x-apiroute-params is ignored', path: '/api/echo?a=1', headers: { 'x-apiroute-params': '{"a":"evil","id":"x"}' } });

// --- compression (next.config compress, on by default) ------------------------------------
const encodings = ['gzip, deflate, br', 'deflate', 'gzip;q=0, deflate;q=0.5', 'br', 'identity', '*', 'gzip;q=0, identity;q=0'];
for (const kind of ['json', 'text', 'stream', 'no-transform', 'octet', 'small', 'vary', 'status']) {
  for (const e of kind === 'json' ? encodings : ['gzip, deflate, br']) {
    add({ name: `compression: ${kind}, accept ${e}`, path: `/api/big?kind=${kind}`, headers: { 'accept-encoding': e } });
  }
}
add({ name: 'compression: json without Accept-Encoding', path: '/api/big?kind=json' });
add({ name: 'compression: HEAD of json', method: 'HEAD', path: '/api/big?kind=json', headers: { 'accept-encoding': 'gzip' } });
add({ name: 'compression: app route', path: '/api/big-app', headers: { 'accept-encoding': 'gzip, deflate, br' } });

// --- route parameters and collisions --------------------------------------------------------
const params = [
  '/api/items/5', '/api/items/5?id=6', '/api/items/5?id=6&id=7', '/api/items/5?ID=6', '/api/items/a%20b',
  '/api/items/a%2Fb', '/api/items/caf%C3%A9', '/api/items/5?other=1&other=2', '/api/items/%F0%9F%98%80',
  '/api/items/x?nxtPid=9', '/api/items/a+b', '/api/items/5?id',
  '/api/docs/a', '/api/docs/a/b/c', '/api/docs/a?slug=x', '/api/docs/a/b?slug=x&slug=y', '/api/docs/a%2Fb/c',
  '/api/docs/%20', '/api/shop', '/api/shop?path=x', '/api/shop?path=x&path=y', '/api/shop/a/b',
  '/api/shop/a?path=z', '/api/shop/%E2%9C%93',
];
for (const p of params) add({ name: `params: ${p}`, path: p });
add({ name: 'params: POST body with params', method: 'POST', path: '/api/items/7?id=8', headers: json, body: '{"id":"body"}' });

// --- cookies ------------------------------------------------------------------------------
const cookieHeaders = [
  'a=1; b=2', 'a=1; a=2', 'q="quoted value"', 'enc=%20sp%C3%A9ce', 'bad=%zz', 'novalue; x=1', ' spaced = 1 ',
  'constructor=1; ok=2', 'empty=', 'a=1;b=2;c=3', 'json=%7B%22k%22%3A1%7D', 'eq=a=b=c', 'dup=1; dup=2; dup=3',
];
for (const c of cookieHeaders) add({ name: `cookies: ${c}`, path: '/api/echo', headers: { cookie: c } });
add({ name: 'cookies: none', path: '/api/echo' });
add({ name: 'cookies: read by headers handler', path: '/api/headers', headers: { cookie: 'k=v' } });

// --- res helpers -------------------------------------------------------------------------------
const kinds = [
  'string', 'html', 'empty-string', 'object', 'array', 'number', 'boolean', 'null', 'undefined', 'buffer',
  'typed-buffer', 'stream', 'typed-stream', 'json', 'json-string', 'json-null', 'json-undefined', 'unicode',
  'end', 'write-end', 'writehead', 'nope',
];
for (const k of kinds) add({ name: `send: ${k}`, path: `/api/send?kind=${k}` });
for (const [k, s] of [['object', 204], ['string', 204], ['object', 304], ['json', 201], ['buffer', 202], ['stream', 500], ['string', 404], ['json', 418]]) {
  add({ name: `send: ${k} with status ${s}`, path: `/api/send?kind=${k}&status=${s}` });
}
add({ name: 'send: HEAD of json', method: 'HEAD', path: '/api/send?kind=json' });
add({ name: 'etag: first GET', path: '/api/send?kind=object' });
add({ name: 'etag: If-None-Match hit → 304', path: '/api/send?kind=object', etagFrom: 'etag: first GET' });
add({ name: 'etag: If-None-Match weak hit', path: '/api/send?kind=object', etagFrom: 'etag: first GET', weak: true });
add({ name: 'etag: If-None-Match miss', path: '/api/send?kind=object', headers: { 'if-none-match': '"nope"' } });
add({ name: 'etag: If-None-Match *', path: '/api/send?kind=string', headers: { 'if-none-match': '*' } });
add({ name: 'etag: no-cache overrides', path: '/api/send?kind=object', etagFrom: 'etag: first GET', headers: { 'cache-control': 'no-cache' } });
add({ name: 'etag: If-Modified-Since alone', path: '/api/send?kind=object', headers: { 'if-modified-since': 'Wed, 21 Oct 2015 07:28:00 GMT' } });
add({ name: 'etag: buffer', path: '/api/send?kind=buffer' });
add({ name: 'etag: json', path: '/api/send?kind=json', headers: { 'if-none-match': '"x", "y"' } });
add({ name: 'headers: custom, set-cookie list, appendHeader', path: '/api/headers' });
add({ name: 'headers: with status 201', path: '/api/headers?status=201' });
add({ name: 'stream: res.write over time', path: '/api/stream' });
add({ name: 'hello (the benchmark handler)', path: '/api/hello' });
add({ name: 'request headers a pages handler sees', path: '/api/request-headers', headers: { 'x-custom-request': 'v' } });
add({ name: 'request headers an app route sees', path: '/api/request-headers-app', headers: { 'x-custom-request': 'v' } });
add({ name: 'typescript handler', path: '/api/typed?name=ts' });
add({ name: 'typescript handler, repeated name', path: '/api/typed?name=a&name=b' });
add({ name: 'commonjs handler GET', path: '/api/legacy' });
for (const m of ['HEAD', 'OPTIONS', 'PUT', 'PATCH', 'DELETE']) {
  add({ name: `method: ${m} on pages handler`, method: m, path: '/api/echo?m=1' });
}

// --- redirects -----------------------------------------------------------------------------
add({ name: 'redirect: default 307', path: '/api/redirect' });
add({ name: 'redirect: to path', path: '/api/redirect?to=/somewhere%3Fx%3D1' });
for (const s of [301, 302, 303, 307, 308]) add({ name: `redirect: status ${s}`, path: `/api/redirect?status=${s}&to=/next` });
add({ name: 'redirect: absolute url', path: '/api/redirect?status=302&to=https://example.com/x?y=1' });
add({ name: 'redirect: invalid arguments → 500', path: '/api/redirect?mode=invalid' });
add({ name: 'redirect: unicode location', path: '/api/redirect?to=/caf%C3%A9' });

// --- errors --------------------------------------------------------------------------------
for (const m of ['throw', 'reject', 'async', 'after-write', 'after-end', 'throw-string', 'status-error', 'none']) {
  add({ name: `error: ${m}`, path: `/api/error?mode=${m}` });
}
add({ name: 'error: POST invalid json before handler', method: 'POST', path: '/api/error?mode=none', headers: json, body: '{' });

// --- preview mode ----------------------------------------------------------------------------
add({ name: 'preview: content without cookies', path: '/api/preview/content' });
add({ name: 'preview: enable', path: '/api/preview/enable?user=ann' });
add({ name: 'preview: content with preview cookies', path: '/api/preview/content', cookiesFrom: 'preview: enable' });
add({ name: 'preview: echo sees preview', path: '/api/echo?p=1', cookiesFrom: 'preview: enable' });
add({ name: 'preview: app route unaffected', path: '/api/route-echo', cookiesFrom: 'preview: enable' });
add({ name: 'preview: enable with maxAge and path', path: '/api/preview/enable?user=bob&maxAge=60&path=/api' });
add({ name: 'preview: content with maxAge cookies', path: '/api/preview/content', cookiesFrom: 'preview: enable with maxAge and path' });
add({ name: 'preview: enable then redirect', path: '/api/preview/enable?redirect=/api/preview/content' });
add({ name: 'preview: enable while already in preview', path: '/api/preview/enable?user=again', cookiesFrom: 'preview: enable' });
add({ name: 'preview: disable', path: '/api/preview/disable', cookiesFrom: 'preview: enable' });
add({ name: 'preview: disable with path', path: '/api/preview/disable?path=/api' });
add({ name: 'preview: disable without cookies', path: '/api/preview/disable' });
add({ name: 'preview: tampered cookies are cleared', path: '/api/preview/content', headers: { cookie: '__prerender_bypass=forged; __next_preview_data=forged' } });
add({ name: 'preview: lone data cookie is cleared', path: '/api/preview/content', headers: { cookie: '__next_preview_data=forged' } });
add({ name: 'preview: forged x-apiroute-preview header ignored', path: '/api/preview/content', headers: { 'x-apiroute-preview': 'eyJ1c2VyIjoiZXZpbCJ9' } });
add({ name: 'preview: draft mode enable', path: '/api/preview/draft?enable=1' });
add({ name: 'preview: content in draft mode', path: '/api/preview/content', cookiesFrom: 'preview: draft mode enable' });
add({ name: 'preview: draft mode disable', path: '/api/preview/draft?enable=0' });

// --- edge API routes (pages/api with config.runtime 'edge') ------------------------------
add({ name: 'edge: GET with param', path: '/api/edge/7' });
add({ name: 'edge: param collides with query', path: '/api/edge/7?id=8&x=1&x=2' });
add({ name: 'edge: POST body and cookies', method: 'POST', path: '/api/edge/a%20b', headers: { ...json, cookie: 'c=1' }, body: '{"e":1}' });
add({ name: 'edge: DELETE', method: 'DELETE', path: '/api/edge/9' });

// --- app router route handlers ----------------------------------------------------------------
add({ name: 'app: GET echo', path: '/api/route-echo?a=1&a=2' });
add({ name: 'app: POST json body', method: 'POST', path: '/api/route-echo', headers: json, body: '{"x":1}' });
add({ name: 'app: POST 1.5mb body (no parser limit)', method: 'POST', path: '/api/route-echo', headers: text, body: 'b'.repeat(1.5 * MB), summarize: true });
add({ name: 'app: PUT form body', method: 'PUT', path: '/api/route-echo', headers: form, body: 'email=a%40b.c' });
add({ name: 'app: cookies visible', path: '/api/route-echo', headers: { cookie: 'a=1; b=2' } });
add({ name: 'app: HEAD from GET', method: 'HEAD', path: '/api/route-echo' });
add({ name: 'app: OPTIONS automatic', method: 'OPTIONS', path: '/api/route-echo' });
add({ name: 'app: DELETE not exported → 405', method: 'DELETE', path: '/api/route-echo' });
add({ name: 'app: PATCH not exported → 405', method: 'PATCH', path: '/api/route-echo', headers: json, body: '{}' });
add({ name: 'app: unknown method PROPFIND', method: 'PROPFIND', path: '/api/route-echo' });
add({ name: 'app: dynamic param', path: '/api/things/42?x=1' });
add({ name: 'app: dynamic param encoded', path: '/api/things/a%20b%2Fc' });
add({ name: 'app: DELETE 204 with header', method: 'DELETE', path: '/api/things/9' });
add({ name: 'app: OPTIONS on dynamic', method: 'OPTIONS', path: '/api/things/9' });
add({ name: 'app: catch-all', path: '/api/files/a/b/c.txt' });
add({ name: 'app: optional catch-all empty', path: '/api/opt' });
add({ name: 'app: optional catch-all values', path: '/api/opt/x/y' });
add({ name: 'app: static route params', path: '/api/static' });
add({ name: 'app: streamed body', path: '/api/app-stream' });
add({ name: 'app: only POST, GET → 405', path: '/api/only-post' });
add({ name: 'app: only POST, HEAD → 405', method: 'HEAD', path: '/api/only-post' });
add({ name: 'app: only POST, OPTIONS', method: 'OPTIONS', path: '/api/only-post' });
add({ name: 'app: only POST, POST json', method: 'POST', path: '/api/only-post', headers: json, body: '{"k":"v"}' });
add({ name: 'app: only POST, POST invalid json', method: 'POST', path: '/api/only-post', headers: json, body: 'nope' });
add({ name: 'app: explicit HEAD', method: 'HEAD', path: '/api/with-head' });
add({ name: 'app: explicit OPTIONS', method: 'OPTIONS', path: '/api/with-head' });
add({ name: 'app: GET next to explicit HEAD', path: '/api/with-head' });
add({ name: 'app: handler throws → 500', path: '/api/throws' });
add({ name: 'app: statusText', method: 'POST', path: '/api/throws' });
add({ name: 'app: no Response returned → 500', path: '/api/no-response' });
add({ name: 'app: NextResponse.json + cookies', path: '/api/next-response?name=zed', headers: { cookie: 'theme=dark' } });
add({ name: 'app: NextResponse.redirect from form', method: 'POST', path: '/api/next-response', headers: form, body: 'email=f%40g.h' });
add({ name: 'app: typescript route without cookie', path: '/api/next-response' });
add({ name: 'app: next/headers cookies() and headers()', path: '/api/next-headers', headers: { cookie: 'theme=dark; a=1', 'x-custom-request': 'hi' } });
add({ name: 'app: next/headers without cookies', path: '/api/next-headers' });
add({ name: 'preview: draftMode().isEnabled with preview cookies', path: '/api/next-headers', cookiesFrom: 'preview: enable' });
add({ name: 'preview: draft mode via next/headers enable', method: 'POST', path: '/api/next-headers?on=1' });
add({ name: 'preview: draft mode via next/headers, then isEnabled', path: '/api/next-headers', cookiesFrom: 'preview: draft mode via next/headers enable' });
add({ name: 'preview: draft mode via next/headers disable', method: 'POST', path: '/api/next-headers?on=0' });

// --- preview mode with one of the two cookies ------------------------------------------------
for (const [label, cookie] of [['bypass', '__prerender_bypass=forged'], ['data', '__next_preview_data=forged']]) {
  add({ name: `preview: lone ${label} cookie, handler reads req.preview`, path: '/api/preview/content', headers: { cookie } });
  add({ name: `preview: lone ${label} cookie, handler ignores preview`, path: '/api/hello', headers: { cookie } });
  add({ name: `preview: lone ${label} cookie, app route`, path: '/api/route-echo', headers: { cookie } });
}
add({ name: 'preview: lone cookie, pages handler sets its own Set-Cookie list', path: '/api/headers', headers: { cookie: '__next_preview_data=forged' } });
add({ name: 'preview: lone cookie, app route sets cookies', path: '/api/next-headers', headers: { cookie: '__prerender_bypass=forged' } });
add({ name: 'preview: lone cookie, enable', path: '/api/preview/enable?user=lone', headers: { cookie: '__prerender_bypass=forged' } });
add({ name: 'preview: lone cookie, disable', path: '/api/preview/disable', headers: { cookie: '__next_preview_data=forged' } });
add({ name: 'preview: lone cookie, edge route', path: '/api/edge/3', headers: { cookie: '__next_preview_data=forged' } });
add({ name: 'preview: lone bypass cookie of a valid pair', path: '/api/preview/content', cookiesFrom: 'preview: enable', onlyCookie: '__prerender_bypass' });
add({ name: 'preview: lone data cookie of a valid pair', path: '/api/preview/content', cookiesFrom: 'preview: enable', onlyCookie: '__next_preview_data' });
add({ name: 'preview: lone bypass cookie of a valid pair, draftMode()', path: '/api/next-headers', cookiesFrom: 'preview: enable', onlyCookie: '__prerender_bypass' });

// --- the trailing-slash and repeated-slash 308 ----------------------------------------------
for (const p of [
  '/api/echo/', '/api/echo/?a=1&b&a=2', '/api/echo/?x=%20+y&t=~!*()%27&z=%zz', '/api/echo/?', '/api/echo/?constructor=1',
  '/api/items/5/', '/api/docs/a/b/', '/api/shop/', '/api/route-echo/', '/api/things/9/?x=1', '/api/edge/7/',
  '/api//echo', '/api//echo?b&a=1', '/api/echo//?q=1',
]) {
  add({ name: `slash: GET ${p}`, path: p });
}
add({ name: 'slash: HEAD /api/echo/', method: 'HEAD', path: '/api/echo/' });
add({ name: 'slash: POST /api/route-echo/', method: 'POST', path: '/api/route-echo/', headers: json, body: '{}' });

// --- informational (1xx) statuses ---------------------------------------------------------------
for (const mode of ['status-103', 'status-100-send', 'writehead-102', 'early-hints']) {
  add({ name: `1xx: pages ${mode}`, path: `/api/informational?mode=${mode}` });
}
add({ name: '1xx: pages handler still answers after a refused 1xx', path: '/api/informational?mode=none' });
for (const mode of ['response-103', 'json-100', 'next-response-101']) {
  add({ name: `1xx: app ${mode}`, path: `/api/informational-app?mode=${mode}` });
}

// --- next/headers cookies() ---------------------------------------------------------------------
const jarCookies = { cookie: 'a=1; b=2; c=3; enc=%20x; bad=%zz; flag' };
for (const seq of ['read', 'mutate', 'own', 'own-untouched', 'delete-missing', 'chain']) {
  add({ name: `cookies(): ${seq}`, path: `/api/cookie-jar?seq=${seq}`, headers: jarCookies });
}
add({ name: 'cookies(): read without a Cookie header', path: '/api/cookie-jar?seq=read' });
add({ name: 'cookies(): mutate without a Cookie header', path: '/api/cookie-jar?seq=mutate' });

// --- App Route request.url and nextUrl with odd queries ---------------------------------------
for (const q of [
  '?a=1&a=2&b', '?b&a=1', '?a=1&&b=&c', '?a=1&b=2&a=3', '?x=%20+y&z=%zz', '?', '?=v&k', '?nxtPfoo=1&keep=2&nxtIbar=3',
  '?__proto__=x&constructor=y&toString=z', '?_rsc=abc&x=1', '?nextInternalLocale=de&x=1', '?a[]=1&a[]=2', '?%61=1&a=2',
  '?emoji=%F0%9F%98%80&q=%E0%A4%A', '?t=~!*()%27',
]) {
  add({ name: `app query: ${q}`, path: `/api/query-app${q}` });
}
add({ name: 'app query: dynamic route keeps its param-named keys', path: '/api/things/5?id=6&x=1&id=7' });
add({ name: 'app query: dynamic route, value-less keys', path: '/api/things/5?b&id' });
add({ name: 'app query: edge route, repeated and value-less keys', path: '/api/edge/7?b&a=1&x=2&a=3' });

// --- HEAD and a handler's own Content-Length -------------------------------------------------
for (const method of ['GET', 'HEAD']) {
  for (const q of ['', '?mode=header-only', '?mode=zero']) add({ name: `head: pages ${method} ${q || 'send'}`, method, path: `/api/head-length${q}` });
  for (const q of ['', '?mode=none', '?mode=stream']) add({ name: `head: app ${method} ${q || 'own length'}`, method, path: `/api/head-length-app${q}` });
  add({ name: `head: app explicit HEAD handler, ${method}`, method, path: '/api/head-explicit' });
}

// --- next/navigation in route handlers --------------------------------------------------------
for (const what of [
  'redirect', 'redirect-push', 'redirect-absolute', 'redirect-unicode', 'permanent', 'not-found', 'forbidden', 'unauthorized',
  'redirect-with-cookies', 'not-found-with-cookies', 'caught', 'rethrow', 'rethrow-cause', 'rethrow-plain',
]) {
  add({ name: `navigation: ${what}`, path: `/api/navigation?do=${what}` });
}
add({ name: 'navigation: redirect in a form POST → 303', method: 'POST', path: '/api/navigation?do=redirect', headers: form, body: 'a=1' });
add({ name: 'navigation: permanentRedirect in a form POST → 303', method: 'POST', path: '/api/navigation?do=permanent', headers: form, body: 'a=1' });
add({ name: 'navigation: redirect in a form POST with charset → 307', method: 'POST', path: '/api/navigation?do=redirect', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, body: 'a=1' });
add({ name: 'navigation: redirect in a JSON POST → 307', method: 'POST', path: '/api/navigation?do=redirect', headers: json, body: '{}' });
add({ name: 'navigation: redirect with a next-action header → 303', method: 'POST', path: '/api/navigation?do=redirect', headers: { 'next-action': 'abc' }, body: '{}' });
add({ name: 'navigation: redirect type in a multipart POST', method: 'POST', path: '/api/navigation?do=caught', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' });

// --- res.setHeader('Set-Cookie', …) ---------------------------------------------------------------
for (const mode of ['string', 'array-dupes', 'number', 'case', 'append', 'after-end', 'none']) {
  add({ name: `set-cookie: ${mode}`, path: `/api/set-cookie?mode=${mode}` });
}

// --- process globals libraries use to detect Next.js ------------------------------------------
add({ name: 'globals: pages handler', path: '/api/globals' });
add({ name: 'globals: app route', path: '/api/globals-app' });
add({ name: 'globals: edge route', path: '/api/edge-globals' });

// --- the app's .env files -----------------------------------------------------------------------
add({ name: 'env: pages handler', path: '/api/env' });
add({ name: 'env: app route', path: '/api/env-app' });

// --- unbuilt files: relative imports without an extension, next/* stand-ins ------------------
add({ name: 'unbuilt: pages handler with extension-less imports', path: '/api/unbuilt?x=1' });
add({ name: 'unbuilt: app route with next/* imports', path: '/api/unbuilt-app?b&a=1' });
add({ name: 'unbuilt: app route notFound()', path: '/api/unbuilt-app?do=missing' });
add({ name: 'unbuilt: app route redirect() with a cookie', path: '/api/unbuilt-app?do=redirect' });
