// GET /api/preview/enable?secret=...&slug=... — turns Preview Mode on, as in the Next.js docs.
export default function handler(req, res) {
  const secret = process.env.PREVIEW_SECRET || 'preview-secret';
  if (req.query.secret !== secret) return res.status(401).json({ message: 'Invalid token' });
  res.setPreviewData({ slug: req.query.slug || 'hello-world' }, { maxAge: 60 * 60 });
  res.redirect(`/api/preview/article`);
}
