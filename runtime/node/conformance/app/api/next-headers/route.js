import { cookies, draftMode, headers } from 'next/headers';

export async function GET() {
  const jar = await cookies();
  const h = await headers();
  const draft = await draftMode();
  const before = jar.get('theme')?.value ?? null;
  jar.set('visited', 'yes', { httpOnly: true, sameSite: 'lax' });
  return Response.json({
    theme: before,
    visitedAfterSet: jar.get('visited')?.value ?? null,
    names: jar.getAll().map((c) => c.name).sort(),
    custom: h.get('x-custom-request'),
    draft: draft.isEnabled,
  });
}

export async function POST(request) {
  const draft = await draftMode();
  if (new URL(request.url).searchParams.get('on') === '1') draft.enable();
  else draft.disable();
  return Response.json({ draft: draft.isEnabled });
}
