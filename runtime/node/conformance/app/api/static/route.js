export const dynamic = 'force-dynamic';

export async function GET(request, context) {
  return Response.json({ hasParams: context.params !== undefined, params: context.params ? await context.params : null });
}
