export const config = { api: { bodyParser: { sizeLimit: 100 } } };

export default function handler(req, res) {
  res.json({ body: req.body });
}
