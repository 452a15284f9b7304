import { probeGlobals } from '../../../lib/globals';

export async function GET() {
  return Response.json(probeGlobals());
}
