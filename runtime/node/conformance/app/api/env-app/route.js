import { probeEnv } from '../../../lib/env';

export async function GET() {
  return Response.json(probeEnv());
}
