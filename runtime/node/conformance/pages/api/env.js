import { probeEnv } from '../../lib/env';

export default function handler(req, res) {
  res.json(probeEnv());
}
