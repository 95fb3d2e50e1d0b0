import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadNative, loadNativeFrom, nativePath, NATIVE_ABI_VERSION, platformTriple } from '../../src/native/index.js';
import { startCli } from '../helpers/child.js';

t.test('the built binary loads and matches this build', async (t) => {
  const native = loadNative();
  t.equal(native.abiVersion, NATIVE_ABI_VERSION);
  t.equal(loadNative(), native, 'loaded once');
  t.match(nativePath(), new RegExp(`native/npcd-native\\.${platformTriple()}\\.node$`));
});

t.test('index.d.ts declares exactly what the binary exports', async (t) => {
  const dts = readFileSync(new URL('../../native/index.d.ts', import.meta.url), 'utf8');
  const declared = [...dts.matchAll(/^export (?:declare )?(?:function|const|class) (\w+)/gm)].map((m) => m[1]).sort();
  t.same(Object.keys(loadNative()).sort(), declared);
});

t.test('a panic in native code becomes a JS error, and the module keeps working', async (t) => {
  const native = loadNative();
  for (let i = 0; i < 3; i++) t.throws(() => native.panicForTest(), { code: 'ERR_NATIVE_PANIC', message: /native code panicked: panicForTest was called/ });
  t.same(native.decode(native.encode({ a: [1, 'x'] })), { a: [1, 'x'] }, 'still usable');
});

t.test('a missing binary fails with the cause', async (t) => {
  const err = (() => {
    try {
      loadNativeFrom('/nonexistent/npcd-native.node');
    } catch (e) {
      return e as Error & { code?: string };
    }
  })();
  t.equal(err?.message, 'Failed to load native binding');
  t.equal(err?.code, 'ERR_NATIVE_LOAD');
  t.match((err?.cause as Error).message, /nonexistent.*does not exist; build it with npm run build:native/);
});

t.test('a binary of another ABI version is refused', async (t) => {
  const path = fileURLToPath(new URL('../fixtures/native/wrong-abi.cjs', import.meta.url));
  t.throws(() => loadNativeFrom(path), { message: 'Failed to load native binding', code: 'ERR_NATIVE_LOAD', cause: { message: /ABI version 999, this build needs 1/ } });
});

t.test('the server says which implementations it uses, and falls back when the module does not load', async (t) => {
  const ok = await startCli(t, []);
  const line = ok.logs.find((l) => String(l.msg).startsWith('implementations:'));
  t.equal(line?.msgpack, 'native');
  t.equal(line?.vectors, 'native');
  ok.child.kill('SIGTERM');
  await ok.exited;

  const off = await startCli(t, ['--no-native']);
  const l2 = off.logs.find((l) => String(l.msg).startsWith('implementations:'));
  t.equal(l2?.msgpack, 'msgpackr');
  t.equal(l2?.vectors, 'hnswlib-node (HNSW), js (exact)');
  t.notOk(off.logs.some((l) => l.level === 40), 'no warning when asked for');
  off.child.kill('SIGTERM');
  await off.exited;

  const broken = await startCli(t, [], { NPCD_NATIVE_PATH: '/nonexistent/npcd-native.node' });
  const warn = broken.logs.find((l) => l.level === 40);
  t.match(warn?.msg, /native module not loaded; using the JavaScript implementations/);
  t.match(warn?.reason, /Failed to load native binding: \/nonexistent\/npcd-native.node does not exist/);
  t.equal(broken.logs.find((l) => String(l.msg).startsWith('implementations:'))?.msgpack, 'msgpackr');
  broken.child.kill('SIGTERM');
  await broken.exited;
});
