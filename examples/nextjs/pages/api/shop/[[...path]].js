// /api/shop and /api/shop/x/y — an optional catch-all: req.query.path is absent for /api/shop.
export default function handler(req, res) {
  const { path } = req.query;
  res.status(200).json({ path: path ?? null, section: path ? path[0] : 'home' });
}
