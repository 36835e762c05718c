// End-to-end: coffer's console in headless Chromium. Signs in by link, uploads a PNG through
// the file input, sees it listed, checks the preview image really loaded, checks that a file
// declared as a document type gets no preview and that its link downloads instead of rendering,
// opens the PNG's copied link without a token, deletes it, sees it gone, and saves a screenshot.
//
// Needs COFFER_BIN (the coffer binary); scripts/test sets it and installs Chromium and
// playwright-core when missing.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { deflateSync } from "node:zlib";
import { BIN, freePort, launchChromium, waitReady } from "./lib.mjs";
const SCREENSHOT = process.env.COFFER_E2E_SCREENSHOT ?? join(tmpdir(), "coffer-console.png");

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A real 48×48 RGB PNG: a blue square with an orange diagonal. */
function png() {
  const w = 48, h = 48;
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = [0];
    for (let x = 0; x < w; x++) row.push(...(Math.abs(x - y) < 4 ? [240, 140, 30] : [40, 90, 200]));
    rows.push(Buffer.from(row));
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

test("console: sign in by link, upload, list, preview, share, delete", async (t) => {
  assert.ok(BIN, "COFFER_BIN must point at the coffer binary (run scripts/test)");
  const dir = mkdtempSync(join(tmpdir(), "coffer-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env, COFFER_DATA_DIR: dir, COFFER_PUBLIC_URL: base, COFFER_LOG: "warn" };
  const server = spawn(BIN, ["serve", "--addr", `127.0.0.1:${port}`], { env, stdio: ["ignore", "ignore", "inherit"] });
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitReady(base);
  const link = execFileSync(BIN, ["token", "--tenant", "e2e", "--console"], { env }).toString().trim();
  assert.match(link, /\/console#token=/);

  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));

  // Sign in by link; the token leaves the address bar.
  await page.goto(link);
  await page.waitForSelector("#app:not([hidden])");
  assert.ok(!page.url().includes("token"), `token still in ${page.url()}`);
  assert.match(await page.textContent("#tenant"), /e2e/);
  const csp = (await page.request.get(`${base}/console`)).headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);

  // Upload a PNG through the file input, in the logos tab.
  await page.click('nav#tabs button[data-category="logos"]');
  const image = png();
  await page.setInputFiles("#picker", { name: "company-logo.png", mimeType: "image/png", buffer: image });
  await page.waitForSelector("#uploads .ok");
  const row = page.locator('#files tbody tr[data-key="tenant-e2e/logos/company-logo.png"]');
  await row.waitFor();
  assert.match(await row.textContent(), /image\/png/);

  // A refused upload says why.
  await page.setInputFiles("#picker", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello") });
  await page.waitForSelector("#uploads .error");
  assert.match(await page.textContent("#uploads"), /unsupported-media-type/);

  // The preview image actually loads.
  await row.locator("text=Preview").click();
  await page.waitForFunction(() => {
    const img = document.querySelector("#preview-body img");
    return img && img.complete && img.naturalWidth > 0;
  });
  assert.equal(await page.evaluate(() => document.querySelector("#preview-body img").naturalWidth), 48);

  // A declared document type (XSLT with XHTML script) is never previewed, and the browser
  // itself does not render its link: it becomes a download, so no script runs on coffer's origin.
  const token = link.split("#token=")[1];
  const xsl = '<?xml version="1.0"?><x:html xmlns:x="http://www.w3.org/1999/xhtml"><x:script>document.title="pwned"</x:script></x:html>';
  const uploaded = await fetch(`${base}/v1/files?category=reports&filename=invoice.txt&content_type=text/xsl`, {
    method: "POST", headers: { authorization: `Bearer ${token}` }, body: xsl,
  });
  assert.equal(uploaded.status, 201);
  assert.equal((await uploaded.json()).inline, false);
  await page.click('nav#tabs button[data-category="reports"]');
  const xslRow = page.locator('#files tbody tr[data-key="tenant-e2e/reports/invoice.txt"]');
  await xslRow.waitFor();
  assert.equal(await xslRow.locator("text=Preview").count(), 0, "no preview for a document type");
  const presigned = await fetch(`${base}/v1/presign`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ key: "tenant-e2e/reports/invoice.txt" }),
  });
  const { url: xslUrl } = await presigned.json();
  const probe = await browser.newPage();
  const download = probe.waitForEvent("download", { timeout: 10000 });
  await probe.goto(xslUrl).catch((e) => assert.match(String(e), /Download is starting|ERR_ABORTED/));
  await download;
  assert.notEqual(await probe.title(), "pwned");
  await probe.close();
  await page.click('nav#tabs button[data-category="logos"]');
  await row.waitFor();

  // The API reference: Swagger UI from assets in the binary, under a strict CSP (no script or
  // style error), authorized with the token, one call tried from the page.
  const docs = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const docProblems = [];
  docs.on("console", (m) => { if (m.type() === "error") docProblems.push(m.text()); });
  docs.on("pageerror", (e) => docProblems.push(String(e)));
  await docs.goto(`${base}/docs`);
  await docs.waitForSelector(".opblock");
  assert.ok((await docs.locator(".opblock").count()) >= 10, "every operation is listed");
  await docs.click("button.authorize");
  await docs.fill(".modal-ux input[type=text]", token);
  await docs.click(".modal-ux button.authorize");
  await docs.click(".modal-ux button.btn-done");
  const usageOp = docs.locator("#operations-files-usage");
  await usageOp.locator(".opblock-summary").click();
  await usageOp.locator("button.execute").click();
  const status = usageOp.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor();
  assert.equal((await status.textContent()).trim(), "200");
  assert.match(await usageOp.locator(".live-responses-table").textContent(), /"tenant_id": "e2e"/);
  assert.deepEqual(docProblems, [], "Swagger UI runs under the CSP without errors");
  await docs.close();

  // The copied link works without a token.
  await row.locator("text=Copy link").click();
  await page.selectOption("#share-expiry", "600");
  await page.click("#share-make");
  await page.waitForFunction(() => document.querySelector("#share-link").value.startsWith("http"));
  const shared = await page.inputValue("#share-link");
  const fetched = await fetch(shared);
  assert.equal(fetched.status, 200);
  assert.deepEqual(Buffer.from(await fetched.arrayBuffer()), image);

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // Delete with confirmation; the row goes.
  page.once("dialog", (d) => d.accept());
  await row.locator("text=Delete").click();
  await row.waitFor({ state: "detached" });
  assert.equal((await fetch(shared)).status, 404);
  // The refused upload's 415 is the only failed request the console may log.
  assert.deepEqual(problems.filter((p) => !p.includes("415")), [], "no script errors");
});
