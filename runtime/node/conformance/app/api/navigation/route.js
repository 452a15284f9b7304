import { cookies } from 'next/headers';
import {
  RedirectType,
  forbidden,
  notFound,
  permanentRedirect,
  redirect,
  unauthorized,
  unstable_rethrow,
} from 'next/navigation';

// next/navigation in a route handler, chosen by ?do=.
async function act(request) {
  const what = request.nextUrl.searchParams.get('do');
  if (what === 'redirect') redirect('/api/route-echo?from=navigation');
  if (what === 'redirect-push') redirect('/api/x', RedirectType.push);
  if (what === 'redirect-absolute') redirect('https://example.com/a?b=1');
  if (what === 'redirect-unicode') redirect('/api/café?q=✓');
  if (what === 'permanent') permanentRedirect('/api/moved');
  if (what === 'not-found') notFound();
  if (what === 'forbidden') forbidden();
  if (what === 'unauthorized') unauthorized();
  if (what === 'redirect-with-cookies') {
    (await cookies()).set('flash', 'saved');
    redirect('/api/done');
  }
  if (what === 'not-found-with-cookies') {
    (await cookies()).set('flash', 'lost');
    notFound();
  }
  if (what === 'caught') {
    const digests = [];
    for (const f of [() => redirect('/a;b'), () => permanentRedirect('/p'), notFound]) {
      try {
        f();
      } catch (e) {
        digests.push({ message: e.message, digest: e.digest, isError: e instanceof Error });
      }
    }
    return Response.json({ digests, RedirectType });
  }
  if (what === 'rethrow') {
    try {
      notFound();
    } catch (e) {
      unstable_rethrow(e);
      return Response.json({ swallowed: true });
    }
  }
  if (what === 'rethrow-cause') {
    try {
      try {
        redirect('/api/inner');
      } catch (inner) {
        throw new Error('wrapped', { cause: inner });
      }
    } catch (e) {
      unstable_rethrow(e);
      return Response.json({ swallowed: true });
    }
  }
  if (what === 'rethrow-plain') {
    try {
      throw new Error('plain');
    } catch (e) {
      unstable_rethrow(e);
      return Response.json({ swallowed: true });
    }
  }
  return Response.json({ what });
}

export async function GET(request) {
  return act(request);
}

export async function POST(request) {
  return act(request);
}
