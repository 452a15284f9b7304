// Failures, chosen by ?mode=.
export default async function handler(req, res) {
  const { mode } = req.query;
  if (mode === 'throw') throw new Error('boom');
  if (mode === 'reject') return Promise.reject(new Error('rejected'));
  if (mode === 'async') {
    await new Promise((r) => setTimeout(r, 10));
    throw new TypeError('late boom');
  }
  if (mode === 'after-write') {
    res.setHeader('Content-Type', 'text/plain');
    res.write('partial ');
    throw new Error('boom after write');
  }
  if (mode === 'after-end') {
    res.status(200).send('already answered');
    throw new Error('boom after end');
  }
  if (mode === 'throw-string') throw 'a string';
  if (mode === 'status-error') {
    const err = new Error('teapot');
    err.statusCode = 418;
    throw err;
  }
  res.json({ ok: true });
}
