/** Admin-route test helpers: a copy of the bundled characters folder, and uploads with the admin key. */
import type { Test } from 'tap';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUNDLED = fileURLToPath(new URL('../../characters', import.meta.url));
export const AUTH = { authorization: 'Bearer adm1n' };

/** A copy of the bundled characters in a temporary folder, removed after the test. */
export function folder(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(BUNDLED, dir, { recursive: true });
  return dir;
}

/** POSTs `body` (with the admin key unless other headers are given); the status and the parsed JSON answer. */
export async function upload(url: string, body: Uint8Array | string, headers: Record<string, string> = AUTH) {
  const res = await fetch(url, { method: 'POST', body, headers });
  return { status: res.status, body: (await res.json()) as any };
}
