// GET /api/preview/disable — turns Preview Mode off.
export default function handler(req, res) {
  res.clearPreviewData();
  res.status(200).json({ preview: false });
}
