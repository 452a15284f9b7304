export async function POST(request) {
  const data = await request.json().catch(() => null);
  return Response.json({ received: data }, { status: 201 });
}
