import { cookies } from 'next/headers';

// next/headers cookies() in a route handler: the entries' fields, and the Set-Cookie
// headers after sets and deletes, merged with the handler's own Set-Cookie headers.
function view(jar) {
  return {
    get: jar.get('a') ?? null,
    getObject: jar.get({ name: 'b' }) ?? null,
    getAll: jar.getAll(),
    getAllNamed: jar.getAll('c'),
    has: jar.has('a'),
    hasMissing: jar.has('zzz'),
    size: jar.size ?? '<undefined>',
    string: jar.toString(),
    clear: typeof jar.clear,
    iterable: typeof jar[Symbol.iterator],
  };
}

export async function GET(request) {
  const jar = await cookies();
  const seq = request.nextUrl.searchParams.get('seq') ?? 'read';
  const before = view(jar);
  const own = new Headers({ 'content-type': 'application/json' });
  if (seq === 'mutate') {
    jar.set('new', 'n v');
    jar.delete('b');
    jar.set('a', '2', { httpOnly: true });
    jar.set({ name: 'obj', value: 'v;w', sameSite: 'lax', secure: true, path: '/x', domain: 'example.com', priority: 'high', partitioned: true });
    jar.set('dated', 'd', { expires: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)) });
    jar.set('numeric', 'e', { expires: Date.UTC(2031, 5, 6) });
    jar.delete({ name: 'c', path: '/c', domain: 'example.com' });
    jar.set('new', 'again');
  }
  if (seq === 'own') {
    jar.set('z', 'from-jar');
    jar.set('a', 'from-jar');
    own.append('set-cookie', 'own=1; HttpOnly');
    own.append('set-cookie', 'a=from-response; Path=/a');
    own.append('set-cookie', 'own=2');
  }
  if (seq === 'own-untouched') {
    own.append('set-cookie', 'own=1; HttpOnly');
    own.append('set-cookie', 'own=2');
  }
  if (seq === 'delete-missing') jar.delete('missing');
  const chained = seq === 'chain' ? jar.set('x', '1').set('y', '2') === jar : null;
  return new Response(JSON.stringify({ before, after: view(jar), chained }), { headers: own });
}
