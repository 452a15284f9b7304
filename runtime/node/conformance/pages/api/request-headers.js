// The request header names a handler sees (values of x-forwarded-* vary by server).
export default function handler(req, res) {
  res.json({
    names: Object.keys(req.headers).sort(),
    raw: req.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()).sort(),
    custom: req.headers['x-custom-request'] ?? null,
  });
}
