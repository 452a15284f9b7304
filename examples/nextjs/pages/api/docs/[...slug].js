// /api/docs/a/b/c — a catch-all route: req.query.slug is ['a', 'b', 'c'].
export default function handler(req, res) {
  const { slug } = req.query;
  res.status(200).json({ slug, path: slug.join('/') });
}
