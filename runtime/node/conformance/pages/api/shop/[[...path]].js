import { describe } from '../../../lib/describe';

export default function handler(req, res) {
  res.json(describe(req));
}
