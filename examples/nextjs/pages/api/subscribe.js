// POST /api/subscribe with a form (application/x-www-form-urlencoded) or JSON body.
export default function handler(req, res) {
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    return res.status(405).json({ error: 'Method Not Allowed' });
  }
  const { email } = req.body;
  if (!email) return res.status(400).json({ error: 'email is required' });
  res.status(200).json({ subscribed: true, email });
}
