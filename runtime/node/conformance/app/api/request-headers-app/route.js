export async function GET(request) {
  return Response.json({ names: [...request.headers.keys()].sort() });
}
