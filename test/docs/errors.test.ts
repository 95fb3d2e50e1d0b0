import t from 'tap';
import { readFileSync } from 'node:fs';
import { ERRORS, type ErrorSpec, NATIVE_ERRORS } from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const rows = new Map<string, { status: number; close: number | undefined; line: string }>();
const nativeRows = new Set<string>();
for (const line of doc.split('\n')) {
  const m = /^\| `(ERR_[A-Z_]+)` \| (\d{3}) \| ?(\d{4})? ?\|/.exec(line);
  if (m) rows.set(m[1]!, { status: Number(m[2]), close: m[3] ? Number(m[3]) : undefined, line });
  const n = /^\| `(ERR_NATIVE_[A-Z_]+)` \| [^|]+ \|$/.exec(line);
  if (n) nativeRows.add(n[1]!);
}

t.test('every native module error code is documented, and only those', async (t) => {
  t.same([...nativeRows].sort(), Object.keys(NATIVE_ERRORS).sort());
});

t.test('every error code is documented in docs/errors.md with its status and close code', async (t) => {
  for (const [code, spec] of Object.entries(ERRORS) as [string, ErrorSpec][]) {
    const row = rows.get(code);
    t.ok(row, `${code} is documented`);
    if (!row) continue;
    t.equal(row.status, spec.status, `${code}: HTTP ${spec.status}`);
    t.equal(row.close, spec.close, `${code}: close code ${spec.close ?? 'none'}`);
    t.ok(row.line.split('|').length >= 7, `${code}: has "when" and "what to do"`);
  }
});

t.test('docs/errors.md documents no code that does not exist', async (t) => {
  for (const code of rows.keys()) t.ok(Object.hasOwn(ERRORS, code), `${code} exists in src/errors.ts`);
});

/** Codes Node.js itself raises, which src/ compares errors against. */
const NODE_CODES = new Set(['ERR_WORKER_OUT_OF_MEMORY', 'ERR_BUFFER_TOO_LARGE']);

t.test('every code used in src/ is defined', async (t) => {
  const { readdirSync, statSync } = await import('node:fs');
  const { join } = await import('node:path');
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(new URL('../../src', import.meta.url).pathname);
  for (const file of files) {
    for (const m of readFileSync(file, 'utf8').matchAll(/'(ERR_[A-Z_]+)'/g)) {
      if (NODE_CODES.has(m[1]!)) continue;
      t.ok(Object.hasOwn(ERRORS, m[1]!) || Object.hasOwn(NATIVE_ERRORS, m[1]!), `${m[1]} (${file.split('/src/')[1]}) is defined`);
    }
  }
});

t.test('every ERR_NATIVE_* code raised in native/src is listed in NATIVE_ERRORS', async (t) => {
  const { readdirSync } = await import('node:fs');
  const dir = new URL('../../native/src/', import.meta.url);
  const walk = (d: URL): URL[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(new URL(`${e.name}/`, d)) : e.name.endsWith('.rs') ? [new URL(e.name, d)] : []));
  let found = 0;
  for (const file of walk(dir)) {
    for (const m of readFileSync(file, 'utf8').matchAll(/"(ERR_NATIVE_[A-Z_]*[A-Z])"/g)) {
      found++;
      t.ok(Object.hasOwn(NATIVE_ERRORS, m[1]!), `${m[1]} (${file.pathname.split('/native/src/')[1]}) is listed`);
    }
  }
  t.ok(found > 0, 'codes were found');
});
