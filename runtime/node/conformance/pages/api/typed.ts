import type { NextApiRequest, NextApiResponse } from 'next';

type Answer = { greeting: string; name: string | string[]; method: string | undefined };

export default function handler(req: NextApiRequest, res: NextApiResponse<Answer>) {
  const name: string | string[] = req.query.name ?? 'world';
  res.status(200).json({ greeting: 'hello', name, method: req.method });
}
