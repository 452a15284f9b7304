export default function handler(req, res) {
  res.setHeader('X-Custom', 'one');
  res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly']);
  res.setHeader('Cache-Control', 'public, max-age=60');
  res.appendHeader('X-List', 'x');
  res.appendHeader('X-List', 'y');
  res.status(Number(req.query.status || 200)).json({ cookieHeader: req.headers.cookie ?? null, cookies: req.cookies });
}
