// Serves draft content while Preview Mode is on.
export default function handler(req, res) {
  if (req.preview) {
    return res.json({ content: 'draft', previewData: req.previewData, draftMode: req.draftMode });
  }
  res.json({ content: 'published', previewData: req.previewData });
}
