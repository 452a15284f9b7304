import { NextRequest, NextResponse } from 'next/server';

export async function GET(request: NextRequest) {
  const name = request.nextUrl.searchParams.get('name') ?? 'anon';
  const theme = request.cookies.get('theme')?.value ?? null;
  const response = NextResponse.json({ name, theme, path: request.nextUrl.pathname });
  response.cookies.set('seen', '1', { path: '/', httpOnly: true });
  return response;
}

export async function POST(request: NextRequest) {
  const form = await request.formData();
  return NextResponse.redirect(new URL(`/api/route-echo?email=${encodeURIComponent(String(form.get('email')))}`, request.url), 303);
}
