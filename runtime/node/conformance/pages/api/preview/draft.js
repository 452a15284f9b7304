export default function handler(req, res) {
  res.setDraftMode({ enable: req.query.enable !== '0' });
  res.json({ draft: req.query.enable !== '0' });
}
