// Answers of at least 1 KiB in several shapes, chosen by ?kind=, for the compression cases.
const ROWS = Array.from({ length: 60 }, (_, i) => ({ id: i, name: `row number ${i}`, tags: ['alpha', 'beta'] }));

export default async function handler(req, res) {
  switch (req.query.kind) {
    case 'json': return res.json({ rows: ROWS });
    case 'text': return res.send('line of text\n'.repeat(200));
    case 'stream':
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      for (let i = 0; i < 3; i++) {
        res.write(`chunk ${i} `.repeat(150));
        await new Promise((r) => setTimeout(r, 10));
      }
      return res.end('end\n');
    case 'no-transform': res.setHeader('Cache-Control', 'no-transform'); return res.json({ rows: ROWS });
    case 'octet': res.setHeader('Content-Type', 'application/octet-stream'); return res.send(Buffer.alloc(4096, 7));
    case 'small': return res.json({ small: true });
    case 'vary': res.setHeader('Vary', 'Cookie'); return res.json({ rows: ROWS });
    case 'status': return res.status(404).json({ rows: ROWS });
    default: return res.status(400).json({ error: `unknown kind ${req.query.kind}` });
  }
}
