export async function GET(request, { params }) {
  const { id } = await params;
  return Response.json({ id, search: new URL(request.url).search });
}
export async function DELETE(request, { params }) {
  return new Response(null, { status: 204, headers: { 'x-deleted': (await params).id } });
}
