import { describe } from '../../lib/describe';

export default function handler(req, res) {
  res.status(200).json(describe(req));
}
