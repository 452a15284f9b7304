export default function handler(req, res) {
  res.clearPreviewData(req.query.path ? { path: req.query.path } : undefined);
  res.json({ disabled: true });
}
