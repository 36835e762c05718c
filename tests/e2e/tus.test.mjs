// Real tus clients against coffer: tus-js-client in Node (a 100 MiB file in 5 MiB chunks with
// the connection cut mid-way, resumed from the server's offset; a new client resuming by URL),
// tuspy (Python, a sha1 checksum on every chunk), and Uppy in headless Chromium from a page of
// another origin (CORS for tus), which also uploads through an upload link with `fetch`. On the
// embedded default and on S3 (s3s-fs) with PostgreSQL.
//
// Needs COFFER_BIN; scripts/test sets it and starts the S3 test server and PostgreSQL
// (COFFER_TEST_S3_ENDPOINT, COFFER_TEST_PG_URL) and tuspy's Python (COFFER_TEST_TUSPY_PYTHON).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import * as tus from "tus-js-client";
import { backends, freePort, launchChromium, startCoffer } from "./lib.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const MIB = 1024 * 1024;

function data(size, seed) {
  const b = Buffer.alloc(size + 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b.subarray(0, size);
}

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

/** A TCP proxy to `port` that, once `cutAfter` bytes went upstream, cuts every connection
 * once (as a dropped network would). */
async function cuttingProxy(port, cutAfter) {
  const sockets = new Set();
  let sent = 0;
  let cut = false;
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => {
      sent += chunk.length;
      upstream.write(chunk);
      if (!cut && sent >= cutAfter) {
        cut = true;
        for (const s of sockets) s.destroy();
      }
    });
    upstream.on("data", (chunk) => client.write(chunk));
    const close = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  const proxyPort = await freePort();
  await new Promise((r) => server.listen(proxyPort, "127.0.0.1", r));
  return { port: proxyPort, wasCut: () => cut, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

function upload(file, options) {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(file, { ...options, onSuccess: () => resolve(u), onError: reject });
    u.start();
  });
}

async function fileSha(coffer, token, key) {
  const res = await fetch(`${coffer.base}/v1/files/${key.split("/").map(encodeURIComponent).join("/")}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  return sha256(Buffer.from(await res.arrayBuffer()));
}

for (const backend of backends()) {
  test(`tus-js-client: 100 MiB in 5 MiB chunks survives a cut connection (${backend})`, async (t) => {
    const coffer = await startCoffer(backend);
    t.after(() => coffer.stop());
    const token = coffer.token("tusjs");
    const port = Number(new URL(coffer.base).port);
    const proxy = await cuttingProxy(port, 42 * MIB);
    t.after(() => proxy.close());
    const file = data(100 * MIB, 1);
    const offsets = [];
    let cutSeenAt = null;
    const done = await upload(file, {
      endpoint: `http://127.0.0.1:${proxy.port}/v1/uploads`,
      chunkSize: 5 * MIB,
      retryDelays: [0, 200, 500, 1000, 2000],
      headers: { authorization: `Bearer ${token}` },
      metadata: { category: "reports", filename: "big-tusjs.bin", filetype: "application/octet-stream" },
      onBeforeRequest(req) {
        if (req.getMethod() === "PATCH") {
          const offset = Number(req.getHeader("Upload-Offset"));
          if (proxy.wasCut() && cutSeenAt === null) cutSeenAt = offsets.length;
          offsets.push(offset);
        }
      },
    });
    assert.ok(proxy.wasCut(), "the connection was cut");
    assert.ok(cutSeenAt !== null && cutSeenAt > 0, `PATCHes after the cut: ${offsets}`);
    const resumedAt = offsets[cutSeenAt];
    assert.ok(resumedAt > 0, `resumed from the server's offset, not from zero: ${offsets}`);
    assert.ok(offsets.every((o, i) => i === 0 || o >= offsets[i - 1] || i === cutSeenAt), `${offsets}`);
    const head = await fetch(new URL(done.url, coffer.base), {
      method: "HEAD", headers: { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0" },
    });
    assert.equal(head.headers.get("upload-offset"), String(file.length));
    assert.equal(head.headers.get("coffer-file-sha256"), sha256(file));
    assert.equal(await fileSha(coffer, token, "tenant-tusjs/reports/big-tusjs.bin"), sha256(file));
  });

  test(`tus-js-client: a new client resumes an upload by its URL (${backend})`, async (t) => {
    const coffer = await startCoffer(backend);
    t.after(() => coffer.stop());
    const token = coffer.token("tusjs");
    const file = data(23 * MIB + 5, 2);
    const options = {
      endpoint: `${coffer.base}/v1/uploads`,
      chunkSize: 5 * MIB,
      headers: { authorization: `Bearer ${token}` },
      metadata: { category: "exports", filename: "resumed.bin" },
    };
    // The first client stops after two chunks (a closed tab, a killed process).
    const url = await new Promise((resolve, reject) => {
      const first = new tus.Upload(file, {
        ...options,
        onError: reject,
        onChunkComplete(_size, accepted) {
          if (accepted >= 10 * MIB) first.abort().then(() => resolve(first.url));
        },
      });
      first.start();
    });
    const firstPatch = [];
    await upload(file, {
      ...options,
      uploadUrl: url,
      onBeforeRequest(req) {
        if (req.getMethod() === "PATCH") firstPatch.push(Number(req.getHeader("Upload-Offset")));
      },
    });
    assert.ok(firstPatch[0] >= 10 * MIB, `the second client started at ${firstPatch[0]}`);
    assert.equal(await fileSha(coffer, token, "tenant-tusjs/exports/resumed.bin"), sha256(file));
  });

  test(`tuspy: checksummed chunks (${backend})`, { skip: !process.env.COFFER_TEST_TUSPY_PYTHON }, async (t) => {
    const coffer = await startCoffer(backend);
    t.after(() => coffer.stop());
    const token = coffer.token("tuspy");
    const file = data(10 * MIB + 77, 3);
    const path = join(coffer.dir, "tuspy.bin");
    writeFileSync(path, file);
    const url = execFileSync(process.env.COFFER_TEST_TUSPY_PYTHON,
      [join(HERE, "tuspy_upload.py"), `${coffer.base}/v1/uploads`, token, path, "tuspy.bin"]).toString().trim();
    assert.match(url, /\/v1\/uploads\/[0-9a-f]{32}$/);
    assert.equal(await fileSha(coffer, token, "tenant-tuspy/reports/tuspy.bin"), sha256(file));
  });

  test(`Uppy in Chromium, from a page of another origin (${backend})`, async (t) => {
    // The page's own origin.
    const pagePort = await freePort();
    const pageOrigin = `http://127.0.0.1:${pagePort}`;
    const files = {
      "/": ["text/html", readFileSync(join(HERE, "pages/uppy.html"))],
      "/uppy-page.js": ["text/javascript", readFileSync(join(HERE, "pages/uppy-page.js"))],
      "/uppy.min.js": ["text/javascript", readFileSync(join(HERE, "node_modules/uppy/dist/uppy.min.js"))],
    };
    const pages = createHttpServer((req, res) => {
      const f = files[req.url];
      if (!f) return res.writeHead(404).end();
      res.writeHead(200, { "content-type": f[0] }).end(f[1]);
    });
    await new Promise((r) => pages.listen(pagePort, "127.0.0.1", r));
    t.after(() => pages.close());
    const coffer = await startCoffer(backend, { COFFER_CORS_ORIGINS: pageOrigin });
    t.after(() => coffer.stop());
    const token = coffer.token("uppy");
    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(String(e)));
    await page.goto(`${pageOrigin}/`);
    const size = 3 * MIB + 123;
    const result = await page.evaluate(
      ([endpoint, token, size]) => window.runUpload(endpoint, token, size, "uppy.bin"),
      [`${coffer.base}/v1/uploads`, token, size],
    );
    assert.deepEqual(result.failed, []);
    assert.equal(result.successful.length, 1);
    assert.match(result.successful[0], /\/v1\/uploads\/[0-9a-f]{32}$/);
    const expected = Buffer.alloc(size);
    for (let i = 0; i < size; i++) expected[i] = (i * 31) % 251;
    assert.equal(await fileSha(coffer, token, "tenant-uppy/reports/uppy.bin"), sha256(expected));

    // An upload link, used by the page's `fetch` without a token.
    const made = await fetch(`${coffer.base}/v1/presign`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ key: "tenant-uppy/reports/linked.txt", method: "PUT", max_size: 100 }),
    });
    const { url } = await made.json();
    const put = await page.evaluate(([url]) => window.putLink(url, "sent by fetch"), [url]);
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assert.equal(put.body.key, "tenant-uppy/reports/linked.txt");
    const again = await page.evaluate(([url]) => window.putLink(url, "twice"), [url]);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "link-used");
    assert.deepEqual(problems, []);
  });
}

for (const backend of backends()) {
  test(`console: large files upload resumably, through a dropped connection and a reload (${backend})`, async (t) => {
    const coffer = await startCoffer(backend);
    t.after(() => coffer.stop());
    const token = coffer.token("console");
    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(String(e)));
    // 1 MiB chunks above 1 MiB, so a few MiB make many requests.
    await page.goto(`${coffer.base}/console`);
    await page.evaluate(() => {
      localStorage.setItem("coffer-resumable-over", String(1024 * 1024));
      localStorage.setItem("coffer-chunk", String(1024 * 1024));
    });
    const signIn = async () => {
      await page.goto("about:blank");
      await page.goto(`${coffer.base}/console#token=${token}`);
      await page.waitForSelector("#app:not([hidden])");
      await page.click('nav#tabs button[data-category="reports"]');
    };
    await signIn();

    // A dropped connection in the middle: the console retries from the server's offset.
    const first = data(9 * MIB + 5, 11);
    const firstPath = join(coffer.dir, "first.bin");
    writeFileSync(firstPath, first);
    let patches = 0;
    let dropped = 0;
    await page.route("**/v1/uploads/*", async (route) => {
      if (route.request().method() === "PATCH" && ++patches === 4) {
        dropped++;
        return route.abort("connectionreset");
      }
      return route.continue();
    });
    await page.setInputFiles("#picker", firstPath);
    await page.waitForSelector("#uploads li:nth-child(1) .ok", { timeout: 60000 });
    assert.equal(dropped, 1);
    assert.equal(await fileSha(coffer, token, "tenant-console/reports/first.bin"), sha256(first));
    await page.unroute("**/v1/uploads/*");

    // A reload in the middle: picking the same file again continues where the server is.
    const second = data(8 * MIB + 3, 12);
    const secondPath = join(coffer.dir, "second.bin");
    writeFileSync(secondPath, second);
    let done = 0;
    // Each append answered a little late, so the reload comes in the middle.
    await page.route("**/v1/uploads/*", async (route) => {
      try {
        const res = await route.fetch();
        if (route.request().method() === "PATCH") {
          done++;
          await new Promise((r) => setTimeout(r, 100));
        }
        await route.fulfill({ response: res });
      } catch {
        // The page went away (the reload) while this request was held.
      }
    });
    await page.setInputFiles("#picker", secondPath);
    while (done < 3) await new Promise((r) => setTimeout(r, 20));
    await page.unroute("**/v1/uploads/*");
    await signIn();
    const offsets = [];
    page.on("request", (req) => {
      if (req.method() === "PATCH") offsets.push(Number(req.headers()["upload-offset"]));
    });
    await page.setInputFiles("#picker", secondPath);
    await page.waitForSelector("#uploads li .ok", { timeout: 60000 });
    assert.ok(offsets[0] >= 3 * MIB, `the upload continued at ${offsets[0]}, not from the start`);
    assert.equal(await fileSha(coffer, token, "tenant-console/reports/second.bin"), sha256(second));
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("coffer-upload:")).length), 0);
    assert.deepEqual(problems, []);
  });
}
