// GET /api/preview/article — serves the draft while Preview Mode is on.
export default function handler(req, res) {
  if (req.preview) {
    return res.status(200).json({ article: 'draft', slug: req.previewData.slug });
  }
  res.status(200).json({ article: 'published' });
}
