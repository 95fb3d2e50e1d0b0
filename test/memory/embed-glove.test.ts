/**
 * The embedded embedders: the bundled word vector file (checked, and refused
 * when damaged), the `glove` embedder's vectors (unit length, deterministic,
 * robust to odd input, Chinese and unknown names), and the `hash` embedder.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { NpcdError } from '../../src/errors.js';
import { FeatureHasher, scanTokens } from '../../src/memory/embed/features.js';
import { GloveEmbedder } from '../../src/memory/embed/glove.js';
import { HashEmbedder } from '../../src/memory/embed/hash.js';
import { createEmbedder, type Embedder } from '../../src/memory/embed/index.js';
import { DEFAULT_WORD_VECTORS, decodeWordVectors, WORD_VECTORS_MAGIC } from '../../src/memory/embed/word-vectors.js';
import { JsFlatVectorIndex } from '../../src/memory/vector/flat.js';

function norm(v: Float32Array): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

function cosine(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err,
  );
}

/** Ids of the memories nearest to `query`, best first, through the JS flat index recall uses. */
async function recall(embedder: Embedder, memories: readonly string[], query: string, k = 3): Promise<number[]> {
  const index = new JsFlatVectorIndex({ dim: embedder.dim, metric: 'cosine', kind: 'flat' });
  const vectors = await embedder.embed(memories);
  vectors.forEach((v, i) => index.add(i, v));
  const [q] = await embedder.embed([query]);
  return Array.from(index.search(q!, k).ids);
}

const glove = new GloveEmbedder();
const started = performance.now();
await glove.init();
const firstLoadMs = performance.now() - started;

t.test('the bundled word vector file loads and passes its checks', async (t) => {
  const vectors = glove.vectors!;
  t.equal(vectors.path, DEFAULT_WORD_VECTORS);
  t.equal(vectors.dim, 100);
  t.ok(vectors.count >= 20_000, `${vectors.count} words`);
  t.ok(vectors.bytes > 2 * 1024 * 1024 && vectors.bytes < 6 * 1024 * 1024, `${(vectors.bytes / 1024 / 1024).toFixed(2)} MiB`);
  t.equal(glove.dim, 100 + 156);
  t.equal(glove.name, 'glove');
  t.same(vectors.words.slice(0, 3), ['the', 'of', 'to'], 'most frequent first, punctuation left out');
  for (let i = 1; i < vectors.count; i++) {
    if (vectors.ranks[i]! <= vectors.ranks[i - 1]!) {
      t.fail(`ranks must increase: ${vectors.words[i]} after ${vectors.words[i - 1]}`);
      break;
    }
  }
  for (const w of ['blacksmith', 'princess', 'sword', 'tavern', 'dragon', 'wizard']) t.ok(vectors.index.has(w), `knows "${w}"`);

  // A fresh decode (the load above may be shared): time the part init() pays.
  const bytes = readFileSync(DEFAULT_WORD_VECTORS);
  const t0 = performance.now();
  decodeWordVectors(bytes, DEFAULT_WORD_VECTORS);
  const decodeMs = performance.now() - t0;
  t.comment(`load: first init ${firstLoadMs.toFixed(1)} ms (read + check + decode); decode and CRC-32 check of ${bytes.length} bytes ${decodeMs.toFixed(1)} ms`);
  t.ok(decodeMs < 1000, `decoded in ${decodeMs.toFixed(1)} ms`);
});

t.test('every word of the file is one token of the runtime tokenizer', async (t) => {
  const bad: string[] = [];
  for (const word of glove.vectors!.words) {
    const tokens: string[] = [];
    scanTokens(word, { word: (w) => tokens.push(w), characters: (c) => tokens.push(`chars:${c}`), symbol: (s) => tokens.push(`symbol:${s}`) });
    if (tokens.length !== 1 || tokens[0] !== word) bad.push(word);
  }
  t.same(bad.slice(0, 20), [], `${bad.length} words the tokenizer would never look up`);
});

/** Every token scanTokens gives for `text`, tagged by kind. */
function tokensOf(text: string): string[] {
  const tokens: string[] = [];
  scanTokens(text, { word: (w) => tokens.push(w), characters: (c) => tokens.push(`chars:${c}`), symbol: (s) => tokens.push(`symbol:${s}`) });
  return tokens;
}

t.test('ASCII text takes a fast path that gives exactly the tokens of the general one', async (t) => {
  // A trailing no-break space makes a text non-ASCII (general path) and adds no token (NFKC makes it a space).
  const general = (text: string) => tokensOf(`${text}\u00a0`);
  t.same(tokensOf("Mara's DON'T rock`n`roll 1999 'tis dogs' a''b x-y_z"), ["mara's", "don't", "rock'n'roll", '1999', 'tis', 'dogs', 'a', 'b', 'x', 'y', 'z']);
  for (const text of ["Mara's DON'T rock`n`roll 1999 'tis dogs' a''b x-y_z", '', "'''", 'A', 'end.']) {
    t.same(tokensOf(text), general(text), JSON.stringify(text));
  }
  // Random ASCII over the characters that matter: letters, digits, apostrophes, backticks, separators.
  const alphabet = "aZk09'`'  -.,!?\n\t_\x00~";
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  let differing = 0;
  for (let n = 0; n < 2000; n++) {
    let text = '';
    const length = Math.floor(next() * 40);
    for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)];
    if (JSON.stringify(tokensOf(text)) !== JSON.stringify(general(text))) {
      if (differing++ < 5) t.fail(`tokens differ for ${JSON.stringify(text)}: ${JSON.stringify(tokensOf(text))} vs ${JSON.stringify(general(text))}`);
    }
  }
  t.equal(differing, 0, '2,000 random ASCII texts: the same tokens on both paths');
});

t.test('a word\'s trigrams are hashed from its code units as if from the strings of "<word>"', async (t) => {
  const SEED_WORD = 0x811c9dc5;
  const SEED_TRIGRAM = 0x2545f491;
  // The definition: the word's own feature, then each 3-code-unit slice of "<word>" sharing 0.8 × weight.
  const bySlices = (word: string, weight: number, dim: number) => {
    const out = new Float32Array(dim + 3);
    const h = new FeatureHasher(out, 3, dim);
    h.add(word, SEED_WORD, weight);
    const padded = `<${word}>`;
    const n = padded.length - 2;
    for (let i = 0; i < n; i++) h.add(padded.slice(i, i + 3), SEED_TRIGRAM, (0.8 * weight) / Math.sqrt(n));
    return out;
  };
  const words = ['a', 'ab', 'abc', 'lantern', "mara's", 'café', 'naïve', '日本語', 'x😀y', '😀', 'straße', 'ĳ', '1999', 'a'.repeat(300)];
  for (const word of words) {
    for (const dim of [7, 156, 4096]) {
      const out = new Float32Array(dim + 3);
      new FeatureHasher(out, 3, dim).word(word, 0.6);
      t.same(Array.from(out), Array.from(bySlices(word, 0.6, dim)), `${JSON.stringify(word.slice(0, 12))}, dim ${dim}`);
    }
  }
});

t.test('a damaged, truncated, foreign or missing file is refused with a clear error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-embed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = readFileSync(DEFAULT_WORD_VECTORS);

  const damaged = join(dir, 'damaged.bin');
  copyFileSync(DEFAULT_WORD_VECTORS, damaged);
  const bytes = readFileSync(damaged);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
  writeFileSync(damaged, bytes);
  const e1 = await rejection(new GloveEmbedder({ file: damaged }).init());
  t.ok(e1 instanceof NpcdError, 'an NpcdError');
  t.equal((e1 as NpcdError).code, 'ERR_EMBEDDING_FAILED');
  t.match((e1 as Error).message, /damaged: its CRC-32 is [0-9a-f]{8}, the file says [0-9a-f]{8}/);
  t.match((e1 as Error).message, damaged);
  t.match((e1 as Error).message, /npm run build:embeddings/, 'says how to get a good file');

  const truncated = join(dir, 'truncated.bin');
  writeFileSync(truncated, good.subarray(0, good.length - 1000));
  const e2 = await rejection(new GloveEmbedder({ file: truncated }).init());
  t.equal((e2 as NpcdError).code, 'ERR_EMBEDDING_FAILED');
  t.match((e2 as Error).message, /damaged/);

  const foreign = join(dir, 'notes.bin');
  writeFileSync(foreign, 'these are not word vectors, just a few words of text\n'.repeat(4));
  const e3 = await rejection(new GloveEmbedder({ file: foreign }).init());
  t.match((e3 as Error).message, new RegExp(`not a word vector file \\(it does not start with "${WORD_VECTORS_MAGIC}"\\)`));

  const tiny = join(dir, 'tiny.bin');
  writeFileSync(tiny, 'NPCD');
  t.match(((await rejection(new GloveEmbedder({ file: tiny }).init())) as Error).message, /too short/);

  const missing = join(dir, 'missing.bin');
  const e4 = await rejection(new GloveEmbedder({ file: missing }).init());
  t.equal((e4 as NpcdError).code, 'ERR_EMBEDDING_FAILED');
  t.match((e4 as Error).message, /cannot read word vector file .*missing\.bin \(ENOENT\)/);

  // A file put right after a failure loads: failures are not cached.
  copyFileSync(DEFAULT_WORD_VECTORS, missing);
  const fixed = new GloveEmbedder({ file: missing });
  await fixed.init();
  t.equal(fixed.dim, 256);
});

t.test('vectors are unit length and deterministic', async (t) => {
  const texts = [
    'The blacksmith forged a blade for the princess.',
    'who made the royal girl’s sword?',
    'Mara said: "Eldoria burns at dawn!"',
    '王子在城堡里举行了盛大的宴会',
    'I ❤️ this tavern 🍺',
    'x',
  ];
  const a = await glove.embed(texts);
  t.equal(a.length, texts.length);
  for (const [i, v] of a.entries()) {
    t.equal(v.length, 256);
    t.ok(Math.abs(norm(v) - 1) < 1e-5, `unit length: ${JSON.stringify(texts[i])}`);
  }
  const again = await glove.embed(texts);
  t.same(again, a, 'the same texts give the same vectors');
  const other = new GloveEmbedder();
  await other.init();
  t.same(await other.embed(texts), a, 'another embedder gives the same vectors');
  t.same([glove.embedOne(texts[0]!)], [a[0]], 'embedOne is embed of one text');
  t.same(await glove.embed([]), [], 'no texts, no vectors');
});

t.test('odd input is handled without throwing', async (t) => {
  const [empty, blank, emoji, punctuation, long] = await glove.embed(['', ' \n\t  ', '🐉🔥🏰', '?!… — ***', 'The tavern was warm and loud. '.repeat(3500)]);
  t.ok(empty!.every((x) => x === 0) && empty!.length === 256, 'empty text: the zero vector');
  t.ok(blank!.every((x) => x === 0), 'whitespace: the zero vector');
  t.ok(Math.abs(norm(emoji!) - 1) < 1e-5, 'emoji only: a unit vector');
  t.ok(punctuation!.every((x) => x === 0), 'punctuation only: nothing to embed');
  t.ok(Math.abs(norm(long!) - 1) < 1e-5, '100 KB of text: a unit vector');
  const [dragon] = await glove.embed(['🐉🔥🏰']);
  t.same(dragon, emoji, 'emoji embed deterministically');
  t.ok(cosine(long!, (await glove.embed(['The tavern was warm and loud.']))[0]!) > 0.99, 'a repeated sentence embeds like the sentence');

  const started = performance.now();
  await glove.embed(['The tavern was warm and loud. '.repeat(3500)]);
  const ms = performance.now() - started;
  t.comment(`100 KB text embedded in ${ms.toFixed(1)} ms`);
  t.ok(ms < 2000, `${ms.toFixed(1)} ms`);
});

t.test('Chinese text gets vectors, and related sentences are closer than unrelated ones', async (t) => {
  const [fishing, fishingToo, feast, weather] = await glove.embed([
    '我昨天在河边钓鱼，钓到了一条大鱼。',
    '他喜欢去河边钓鱼。',
    '王子在城堡里举行了盛大的宴会。',
    '明天会下大雨，记得带伞。',
  ]);
  for (const v of [fishing!, fishingToo!, feast!, weather!]) t.ok(Math.abs(norm(v) - 1) < 1e-5, 'a unit vector');
  const related = cosine(fishing!, fishingToo!);
  t.ok(related > cosine(fishing!, feast!), `fishing~fishing ${related.toFixed(3)} > fishing~feast ${cosine(fishing!, feast!).toFixed(3)}`);
  t.ok(related > cosine(fishing!, weather!), `fishing~fishing ${related.toFixed(3)} > fishing~weather ${cosine(fishing!, weather!).toFixed(3)}`);
  t.ok(related > 0.3, `related sentences are clearly similar (${related.toFixed(3)})`);

  const memories = ['我昨天在河边钓鱼，钓到了一条大鱼。', '王子在城堡里举行了盛大的宴会。', '明天会下大雨，记得带伞。', '那把剑是铁匠为公主打造的。'];
  t.equal((await recall(glove, memories, '铁匠打造了什么？'))[0], 3, 'a Chinese question finds its memory');
  t.equal((await recall(glove, memories, '城堡里的宴会'))[0], 1);
});

t.test('unknown names are matched', async (t) => {
  const memories = [
    'The traveler comes from Eldoria, a city beyond the western sea.',
    'The traveler comes from a city beyond the western sea.',
    'A merchant from the capital sold us spices and silk.',
    'The old wizard lives in a tower beyond the northern forest.',
    'Mara keeps a spare key under a loose floorboard.',
    'The harbor city was rebuilt after the great fire.',
    'Our guest arrived by ship from a distant kingdom.',
  ];
  const vectors = glove.vectors!;
  t.notOk(vectors.index.has('eldoria'), '"eldoria" is not in the word list');
  t.equal((await recall(glove, memories, 'What do you know about Eldoria?'))[0], 0, 'a query naming Eldoria finds the memory that names it');
  t.equal((await recall(glove, memories, "Where is Mara's key?"))[0], 4, 'and Mara hers');
  t.equal((await recall(glove, memories, 'Is Mara around?'))[0], 4, 'a name outweighs the other words of a short question');
  t.equal((await recall(glove, memories, 'Eldorian'))[0], 0, 'a form of the name shares its trigrams');
});

t.test('one sentence takes microseconds', async (t) => {
  const sentences = [
    'The blacksmith forged a blade for the princess.',
    'Who made the royal girl’s sword?',
    'Wolves have been killing sheep on the hills near the mill.',
    'The user drinks only tea because wine makes them ill.',
  ];
  for (let i = 0; i < 2000; i++) glove.embedOne(sentences[i % 4]!);
  const rounds = 20_000;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) glove.embedOne(sentences[i % 4]!);
  const us = ((performance.now() - t0) * 1000) / rounds;
  const hash = new HashEmbedder();
  const t1 = performance.now();
  for (let i = 0; i < rounds; i++) hash.embedOne(sentences[i % 4]!);
  const hashUs = ((performance.now() - t1) * 1000) / rounds;
  t.comment(`per sentence (~10 words): glove ${us.toFixed(1)} µs, hash ${hashUs.toFixed(1)} µs`);
  // Generous bounds: a loaded CI machine is slower than a quiet one.
  t.ok(us < 500, `glove: ${us.toFixed(1)} µs per sentence`);
  t.ok(hashUs < 500, `hash: ${hashUs.toFixed(1)} µs per sentence`);
});

t.test('the hash embedder', async (t) => {
  const hash = createEmbedder('hash');
  await hash.init();
  t.equal(hash.name, 'hash');
  t.equal(hash.dim, 256);
  const texts = ['The blacksmith forged a blade', 'the BLACKSMITH forged a blade!', 'A dragon burned the village', ''];
  const [a, b, c, empty] = await hash.embed(texts);
  t.ok(Math.abs(norm(a!) - 1) < 1e-5);
  t.ok(cosine(a!, b!) > 0.999, 'case and punctuation do not matter');
  t.ok(cosine(a!, c!) < 0.5, `different words differ (${cosine(a!, c!).toFixed(3)})`);
  t.ok(empty!.every((x) => x === 0));
  t.same(await hash.embed(texts), [a, b, c, empty], 'deterministic');
  const wide = createEmbedder('hash?dim=1024');
  await wide.init();
  t.equal(wide.dim, 1024);
  t.equal((await wide.embed(['x']))[0]!.length, 1024);
  t.throws(() => new HashEmbedder({ dim: 3 }), { code: 'ERR_EMBEDDING_FAILED' });
});

t.test('embed before init, and an aborted signal', async (t) => {
  const fresh = new GloveEmbedder();
  t.equal(fresh.dim, 0, 'no dimension before init');
  const e1 = await rejection(fresh.embed(['hello']));
  t.equal((e1 as NpcdError).code, 'ERR_EMBEDDING_FAILED');
  t.match((e1 as Error).message, /before init\(\)/);
  const controller = new AbortController();
  controller.abort();
  const e2 = await rejection(glove.embed(['hello'], controller.signal));
  t.equal((e2 as Error).name, 'AbortError');
  await fresh.close();
});
