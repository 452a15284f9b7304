// request.url and request.nextUrl with repeated and value-less query keys.
export async function GET(request) {
  const raw = request.url;
  const q = raw.indexOf('?');
  const url = new URL(raw);
  return Response.json({
    urlSearch: q === -1 ? '' : raw.slice(q),
    urlPath: url.pathname,
    nextUrlSearch: request.nextUrl.search,
    nextUrlPath: request.nextUrl.pathname,
    nextUrlHrefSearch: request.nextUrl.href.slice(request.nextUrl.href.indexOf('?') >>> 0),
    searchParams: [...url.searchParams],
    nextUrlSearchParams: [...request.nextUrl.searchParams],
    nextUrlToString: request.nextUrl.toString().replace(/^[a-z]+:\/\/[^/]+/, ''),
  });
}
