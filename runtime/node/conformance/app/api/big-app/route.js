// A large JSON answer from an App Router route handler, for the compression cases.
export function GET() {
  return Response.json({ rows: Array.from({ length: 60 }, (_, i) => ({ id: i, name: `row number ${i}` })) });
}
