/**
 * The shared fixtures (real Character Cards, a World Info file) live beside
 * the project, in ../shared/fixtures, and are read from there, never copied
 * in. NPCD_FIXTURES points elsewhere (e.g. when the checkout is not next to
 * them).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function findFixtures(): string {
  if (process.env.NPCD_FIXTURES) return resolve(process.env.NPCD_FIXTURES);
  // ../shared/fixtures next to the checkout, or next to a folder above it.
  for (let dir = resolve(ROOT); ; dir = dirname(dir)) {
    const candidate = join(dirname(dir), 'shared', 'fixtures');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(`shared fixtures not found next to ${ROOT} (expected ../shared/fixtures); set NPCD_FIXTURES`);
}

const FIXTURES = findFixtures();

/** Absolute path of a shared fixture, e.g. sharedFixture('cards/seraphina.v2.png'). */
export function sharedFixture(path: string): string {
  return join(FIXTURES, path);
}
