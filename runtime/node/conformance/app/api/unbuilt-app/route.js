// conformance: served unbuilt (the runtime loads this source file, not a build of it)
import { cookies } from 'next/headers';
import { notFound, redirect } from 'next/navigation';
import { NextResponse } from 'next/server';
import { answer } from '../../../lib/nested';

export async function GET(request) {
  const what = request.nextUrl.searchParams.get('do');
  if (what === 'missing') notFound();
  (await cookies()).set('unbuilt', '1');
  if (what === 'redirect') redirect('/api/unbuilt');
  return NextResponse.json({ answer, search: request.nextUrl.search });
}
