export async function GET(request, { params }) {
  return Response.json(await params);
}
