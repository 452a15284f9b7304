export async function GET() {
  return new Response('full body', { headers: { 'x-from': 'get' } });
}
export async function HEAD() {
  return new Response(null, { headers: { 'x-from': 'head' } });
}
export async function OPTIONS() {
  return new Response(null, { status: 200, headers: { 'x-from': 'options', allow: 'GET, HEAD' } });
}
