// An explicit HEAD that announces a length without a body.
export async function HEAD() {
  return new Response(null, { headers: { 'content-type': 'application/json', 'content-length': '42' } });
}
export async function GET() {
  return Response.json({ n: 1 });
}
