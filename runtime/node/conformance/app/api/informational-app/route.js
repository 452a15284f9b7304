import { NextResponse } from 'next/server';

// An App Route answering with an informational (1xx) status.
export async function GET(request) {
  const mode = request.nextUrl.searchParams.get('mode');
  if (mode === 'response-103') return new Response(null, { status: 103 });
  if (mode === 'json-100') return Response.json({ a: 1 }, { status: 100 });
  if (mode === 'next-response-101') return new NextResponse(null, { status: 101 });
  return Response.json({ mode });
}
