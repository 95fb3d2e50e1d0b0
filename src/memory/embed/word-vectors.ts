/**
 * Reads the word vector file of the `glove` embedder
 * (data/embeddings/glove-100d.bin, written by scripts/build-embeddings.mjs;
 * docs/embeddings.md has the layout). Every field is checked against the
 * file size and a CRC-32 over the whole file, so a damaged or truncated
 * file is refused with a message that says how to get a good one back.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { embeddingError } from './types.js';

export const WORD_VECTORS_MAGIC = 'NPCDWVEC';
export const WORD_VECTORS_VERSION = 1;
const HEADER_BYTES = 32;
const QUANT_INT8 = 1;

/**
 * The bundled file. src/memory/embed/ (tests) and dist/memory/embed/ (the
 * built server) are both three levels below the package root, where data/ is.
 */
export const DEFAULT_WORD_VECTORS = fileURLToPath(new URL('../../../data/embeddings/glove-100d.bin', import.meta.url));

const REBUILD = 'restore it from the repository (git checkout data/embeddings) or rebuild it with `npm run build:embeddings`';

export interface WordVectors {
  /** Where it was read from. */
  readonly path: string;
  readonly dim: number;
  readonly count: number;
  /** Words in the list the file was cut from: the Zipf normalizer of word probabilities. */
  readonly sourceVocabulary: number;
  /** Words in file order (most frequent first). */
  readonly words: readonly string[];
  /** Word → row. */
  readonly index: ReadonlyMap<string, number>;
  /** Frequency rank of each row's word in the source list (1 = most frequent). */
  readonly ranks: Uint32Array;
  /** Component j of row i is vectors[i * dim + j] * scales[i]. */
  readonly scales: Float32Array;
  readonly vectors: Int8Array;
  /** Size of the file in bytes. */
  readonly bytes: number;
}

/** Decodes and verifies the bytes of a word vector file; `path` names it in errors. */
export function decodeWordVectors(bytes: Uint8Array, path: string): WordVectors {
  const fail = (what: string): never => {
    throw embeddingError('glove', `word vector file ${path} ${what}; ${REBUILD}`);
  };
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER_BYTES + 4) fail(`is too short (${buf.length} bytes) to be a word vector file`);
  if (buf.toString('latin1', 0, 8) !== WORD_VECTORS_MAGIC) fail(`is not a word vector file (it does not start with "${WORD_VECTORS_MAGIC}")`);
  const version = buf.readUInt32LE(8);
  if (version !== WORD_VECTORS_VERSION) fail(`has format version ${version}; this build reads version ${WORD_VECTORS_VERSION}`);
  const stored = buf.readUInt32LE(buf.length - 4);
  const actual = crc32(buf.subarray(0, buf.length - 4));
  if (stored !== actual) fail(`is damaged: its CRC-32 is ${hex(actual)}, the file says ${hex(stored)}`);

  const dim = buf.readUInt32LE(12);
  const count = buf.readUInt32LE(16);
  const sourceVocabulary = buf.readUInt32LE(20);
  const wordBytes = buf.readUInt32LE(24);
  const quantization = buf.readUInt32LE(28);
  if (quantization !== QUANT_INT8) fail(`uses quantization ${quantization}; this build reads int8 (1)`);
  if (dim < 1 || dim > 4096 || count < 1 || sourceVocabulary < count) fail(`has an impossible header (dim ${dim}, ${count} words of ${sourceVocabulary})`);
  const ranksAt = HEADER_BYTES;
  const scalesAt = ranksAt + 4 * count;
  const vectorsAt = scalesAt + 4 * count;
  const wordsAt = vectorsAt + count * dim;
  const end = wordsAt + wordBytes;
  if (Math.ceil(end / 4) * 4 + 4 !== buf.length) fail(`has ${buf.length} bytes where its header describes ${Math.ceil(end / 4) * 4 + 4}`);

  const words = buf.toString('utf8', wordsAt, end).split('\n');
  if (words.pop() !== '' || words.length !== count) fail(`lists ${words.length} words where its header says ${count}`);
  const index = new Map<string, number>();
  for (let i = 0; i < count; i++) index.set(words[i]!, i);
  if (index.size !== count) fail('lists a word twice');

  // Read value by value: little-endian whatever the host, and no alignment needed.
  const ranks = new Uint32Array(count);
  const scales = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    ranks[i] = buf.readUInt32LE(ranksAt + 4 * i);
    scales[i] = buf.readFloatLE(scalesAt + 4 * i);
    if (ranks[i]! < 1 || ranks[i]! > sourceVocabulary || !Number.isFinite(scales[i])) fail(`has a bad rank or scale for "${words[i]}"`);
  }
  const vectors = new Int8Array(buf.buffer, buf.byteOffset + vectorsAt, count * dim);
  return { path, dim, count, sourceVocabulary, words, index, ranks, scales, vectors, bytes: buf.length };
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** Files read so far: embedders of one file share its vectors (4 MiB each). */
const loaded = new Map<string, Promise<WordVectors>>();

/** Reads and verifies a word vector file once per path; later calls share the result. */
export function loadWordVectors(path: string = DEFAULT_WORD_VECTORS): Promise<WordVectors> {
  let p = loaded.get(path);
  if (!p) {
    p = readFile(path).then(
      (bytes) => decodeWordVectors(bytes, path),
      (err: NodeJS.ErrnoException) => {
        throw embeddingError('glove', `cannot read word vector file ${path} (${err.code ?? err.message}); ${REBUILD}`, err);
      },
    );
    loaded.set(path, p);
    // A failure is not remembered: the file may be put right and loaded again.
    const mine = p;
    p.catch(() => {
      if (loaded.get(path) === mine) loaded.delete(path);
    });
  }
  return p;
}
