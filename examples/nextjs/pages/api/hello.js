// GET /api/hello
export default function handler(req, res) {
  res.status(200).json({ message: 'Hello from a Next.js API route on apiroutes' });
}
