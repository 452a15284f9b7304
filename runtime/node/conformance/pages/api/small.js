export const config = { api: { bodyParser: { sizeLimit: '1kb' } } };

export default function handler(req, res) {
  res.json({ bodyType: typeof req.body, length: JSON.stringify(req.body).length });
}
