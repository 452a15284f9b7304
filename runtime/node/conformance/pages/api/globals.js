import { probeGlobals } from '../../lib/globals';

export default function handler(req, res) {
  res.json(probeGlobals());
}
