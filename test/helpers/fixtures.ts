/**
 * The shared fixtures (real Character Cards, a World Info file) live beside
 * the project, in ../shared/fixtures, and are read from there, never copied
 * in. They are looked for next to the checkout (or a folder above it), then
 * next to the repository a local clone was made from; NPCD_FIXTURES points
 * elsewhere.
 */
import { execFileSync } from 'node:child_process';
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
  // A clone of a local repository: next to the repository it was cloned from.
  const origin = originPath();
  if (origin) {
    const candidate = join(dirname(resolve(origin)), 'shared', 'fixtures');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`shared fixtures not found next to ${ROOT} (expected ../shared/fixtures); set NPCD_FIXTURES`);
}

/** The origin remote when it is a local path (a clone made with git clone /path/to/repo). */
function originPath(): string | undefined {
  try {
    const url = execFileSync('git', ['config', '--get', 'remote.origin.url'], { cwd: ROOT, encoding: 'utf8' }).trim();
    if (url.startsWith('file://')) return fileURLToPath(url);
    return url.startsWith('/') ? url : undefined;
  } catch {
    return undefined;
  }
}

const FIXTURES = findFixtures();

/** Absolute path of a shared fixture, e.g. sharedFixture('cards/seraphina.v2.png'). */
export function sharedFixture(path: string): string {
  return join(FIXTURES, path);
}
