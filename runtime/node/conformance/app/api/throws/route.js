export async function GET() {
  throw new Error('route boom');
}
export async function POST() {
  return Response.json({ status: 'unprocessable' }, { status: 422, statusText: 'Nope' });
}
