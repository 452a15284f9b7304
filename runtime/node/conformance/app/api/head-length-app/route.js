// A GET with its own Content-Length; HEAD falls back to it.
export async function GET(request) {
  const mode = request.nextUrl.searchParams.get('mode');
  if (mode === 'none') return new Response('hello world', { headers: { 'content-type': 'text/plain' } });
  if (mode === 'stream') {
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('hello world'));
        c.close();
      },
    });
    return new Response(body, { headers: { 'content-type': 'text/plain', 'content-length': '11' } });
  }
  return new Response('hello world', { headers: { 'content-type': 'text/plain', 'content-length': '11' } });
}
