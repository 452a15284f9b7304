export default async function handler(req, res) {
  try {
    await res.revalidate('/');
    res.json({ revalidated: true });
  } catch (err) {
    res.status(500).json({ revalidated: false });
  }
}
