export default function handler(req, res) {
  const { to = '/api/echo', status, mode } = req.query;
  if (mode === 'invalid') return res.redirect(Number(status || 301));
  if (status) return res.redirect(Number(status), to);
  return res.redirect(to);
}
