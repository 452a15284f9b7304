// A handler that sets its own Content-Length, read with GET and HEAD.
export default function handler(req, res) {
  const { mode } = req.query;
  res.setHeader('Content-Type', 'text/plain');
  if (mode === 'header-only') {
    res.setHeader('Content-Length', '11');
    return res.end(req.method === 'HEAD' ? undefined : 'hello world');
  }
  if (mode === 'zero') {
    res.setHeader('Content-Length', '0');
    return res.end();
  }
  res.send('hello world');
}
