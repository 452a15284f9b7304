// A handler answering with an informational (1xx) status, chosen by ?mode=.
export default function handler(req, res) {
  const { mode } = req.query;
  if (mode === 'status-103') return res.status(103).end();
  if (mode === 'status-100-send') return res.status(100).send('continue?');
  if (mode === 'writehead-102') {
    res.writeHead(102, { 'x-kind': 'processing' });
    return res.end();
  }
  if (mode === 'early-hints') {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    return res.json({ after: 'hints' });
  }
  res.json({ mode: mode ?? null });
}
