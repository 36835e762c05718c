// Uploads `size` deterministic bytes to coffer with Uppy's tus plugin; resolves with what
// Uppy reported.
window.runUpload = async (endpoint, token, size, filename) => {
  const uppy = new Uppy.Uppy({ autoProceed: false });
  uppy.use(Uppy.Tus, {
    endpoint,
    headers: { authorization: `Bearer ${token}` },
    chunkSize: 1024 * 1024,
    retryDelays: [0, 300, 1000],
    allowedMetaFields: ["category", "filename"],
  });
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31) % 251;
  uppy.addFile({
    name: filename,
    type: "application/octet-stream",
    data: new Blob([data], { type: "application/octet-stream" }),
    meta: { category: "reports", filename },
  });
  const result = await uppy.upload();
  return {
    successful: result.successful.map((f) => f.uploadURL ?? f.tus?.uploadUrl ?? null),
    failed: result.failed.map((f) => String(f.error)),
  };
};

// Uploads `text` through an upload link with `fetch` (no token); resolves with the answer.
window.putLink = async (url, text) => {
  const res = await fetch(url, { method: "PUT", body: new Blob([text], { type: "text/plain" }) });
  return { status: res.status, body: await res.json() };
};
