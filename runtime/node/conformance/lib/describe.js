// What a pages/api handler sees of its request, as JSON (shared by the conformance handlers).
export function describe(req) {
  return {
    method: req.method,
    url: req.url,
    query: req.query,
    body: req.body,
    bodyType: req.body === null ? 'null' : Array.isArray(req.body) ? 'array' : typeof req.body,
    cookies: req.cookies,
    preview: req.preview === undefined ? '<undefined>' : req.preview,
    previewData: req.previewData,
    draftMode: req.draftMode === undefined ? '<undefined>' : req.draftMode,
    contentType: req.headers['content-type'] ?? null,
  };
}
