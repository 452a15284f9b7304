// The benchmark's JSON hello handler (also a conformance case).
export default function handler(req, res) {
  res.status(200).json({ message: 'hello', from: 'pages/api' });
}
