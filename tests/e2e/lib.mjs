// Shared by the end-to-end tests: a coffer server of the binary under test on a free port, on
// the embedded default or on S3 (s3s-fs) with PostgreSQL, and headless Chromium.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

export const BIN = process.env.COFFER_BIN;

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitReady(base) {
  for (let i = 0; i < 150; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("coffer did not start");
}

/** The backends a test runs on: the embedded default always; S3 + PostgreSQL when the test
 * script started s3s-fs (COFFER_TEST_S3_ENDPOINT) and PostgreSQL answers (COFFER_TEST_PG_URL). */
export function backends() {
  const list = ["embedded"];
  if (process.env.COFFER_TEST_S3_ENDPOINT && process.env.COFFER_TEST_PG_URL) list.push("s3+postgres");
  return list;
}

function backendEnv(backend) {
  if (backend === "embedded") return {};
  const id = randomUUID().replaceAll("-", "").slice(0, 12);
  const db = `coffer_test_${randomUUID().replaceAll("-", "")}`;
  const admin = new URL(process.env.COFFER_TEST_PG_URL);
  execFileSync("psql", [admin.href, "-qc", `CREATE DATABASE ${db}`]);
  const url = new URL(admin.href);
  url.pathname = `/${db}`;
  return {
    COFFER_STORAGE: "s3",
    AWS_ENDPOINT_URL: process.env.COFFER_TEST_S3_ENDPOINT,
    AWS_ACCESS_KEY_ID: "coffer-test-access",
    AWS_SECRET_ACCESS_KEY: "coffer-test-secret-key",
    AWS_S3_DOCUMENTS_BUCKET: `e2e-${id}-documents`,
    AWS_S3_MEDIA_BUCKET: `e2e-${id}-media`,
    DATABASE_URL: url.href,
  };
}

/** Starts `coffer serve` on `backend` with `extra` settings; `stop()` ends it and cleans up. */
export async function startCoffer(backend = "embedded", extra = {}) {
  if (!BIN) throw new Error("COFFER_BIN must point at the coffer binary (run scripts/test)");
  const dir = mkdtempSync(join(tmpdir(), "coffer-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env, COFFER_DATA_DIR: dir, COFFER_PUBLIC_URL: base, COFFER_LOG: "warn",
    ...backendEnv(backend), ...extra };
  if (backend !== "embedded") {
    // Creates both buckets; s3s-fs has no lifecycle or encryption API (exit 3, reported).
    try {
      execFileSync(BIN, ["provision"], { env, stdio: "ignore" });
    } catch (e) {
      if (e.status !== 3) throw e;
    }
  }
  const server = spawn(BIN, ["serve", "--addr", `127.0.0.1:${port}`], { env, stdio: ["ignore", "ignore", "inherit"] });
  await waitReady(base);
  const token = (tenant) => execFileSync(BIN, ["token", "--tenant", tenant], { env }).toString().trim();
  return {
    base, env, dir, token,
    stop() {
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}
