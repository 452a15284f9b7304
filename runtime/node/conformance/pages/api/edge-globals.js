import { probeGlobals } from '../../lib/globals';

export const config = { runtime: 'edge' };

export default function handler() {
  return Response.json(probeGlobals());
}
