// res.setHeader('Set-Cookie', …) as Next patches it: the value is stored as an array
// (deduplicated), and setHeader after the headers went out is ignored.
export default function handler(req, res) {
  const { mode } = req.query;
  /** @type {Record<string, unknown>} */
  const seen = {};
  if (mode === 'string') res.setHeader('Set-Cookie', 'a=1; Path=/');
  if (mode === 'array-dupes') res.setHeader('Set-Cookie', ['a=1', 'b=2', 'a=1']);
  if (mode === 'number') res.setHeader('Set-Cookie', 5);
  if (mode === 'case') res.setHeader('set-COOKIE', 'c=3');
  if (mode === 'append') {
    res.setHeader('Set-Cookie', 'a=1');
    res.appendHeader('Set-Cookie', 'b=2');
  }
  seen.getHeader = res.getHeader('Set-Cookie') ?? null;
  seen.isArray = Array.isArray(res.getHeader('Set-Cookie'));
  seen.returnsRes = res.setHeader('X-Probe', 'p') === res;
  if (mode === 'after-end') {
    res.status(200).json(seen);
    res.setHeader('X-Late', 'late');
    res.setHeader('Set-Cookie', 'late=1');
    return;
  }
  res.status(200).json(seen);
}
