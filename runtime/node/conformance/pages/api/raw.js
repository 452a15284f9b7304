import { createHash } from 'node:crypto';

export const config = { api: { bodyParser: false } };

export default async function handler(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  res.json({
    bodyIsUndefined: req.body === undefined,
    length: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    head: bytes.subarray(0, 32).toString('latin1'),
  });
}
