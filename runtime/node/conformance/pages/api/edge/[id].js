// An Edge API route: a Web Request in, a Response out.
export const config = { runtime: 'edge' };

export default async function handler(req) {
  const url = new URL(req.url);
  return new Response(
    JSON.stringify({
      method: req.method,
      pathname: url.pathname,
      search: [...url.searchParams],
      nextUrlSearch: req.nextUrl ? [...req.nextUrl.searchParams] : null,
      body: req.method === 'GET' || req.method === 'HEAD' ? null : await req.text(),
      cookie: req.headers.get('cookie'),
      hasCookiesApi: typeof req.cookies?.get === 'function',
    }),
    { status: 200, headers: { 'content-type': 'application/json', 'x-edge': '1' } },
  );
}
