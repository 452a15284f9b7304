// Enables Preview Mode with data from the query; answers JSON or redirects.
export default function handler(req, res) {
  const options = {};
  if (req.query.maxAge) options.maxAge = Number(req.query.maxAge);
  if (req.query.path) options.path = req.query.path;
  res.setPreviewData({ user: req.query.user ?? 'editor', draft: true, n: 7 }, options);
  if (req.query.redirect) return res.redirect(req.query.redirect);
  res.json({ enabled: true, previewOnThisRequest: req.preview ?? null });
}
