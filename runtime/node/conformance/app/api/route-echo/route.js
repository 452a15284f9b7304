async function describe(request, context, method) {
  const url = new URL(request.url);
  return Response.json({
    method,
    pathname: url.pathname,
    search: url.search,
    searchParams: [...url.searchParams],
    cookie: request.headers.get('cookie'),
    contentType: request.headers.get('content-type'),
    body: method === 'GET' || method === 'HEAD' ? null : await request.text(),
    params: context.params === undefined ? '<undefined>' : await context.params,
  });
}

export async function GET(request, context) {
  return describe(request, context, 'GET');
}
export async function POST(request, context) {
  return describe(request, context, 'POST');
}
export async function PUT(request, context) {
  return describe(request, context, 'PUT');
}
