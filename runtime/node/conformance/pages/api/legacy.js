// CommonJS, with its config on module.exports.
function handler(req, res) {
  res.setHeader('x-style', 'commonjs');
  res.send({ body: req.body, length: typeof req.body === 'string' ? req.body.length : null });
}
module.exports = handler;
module.exports.config = { api: { bodyParser: { sizeLimit: '2kb' } } };
