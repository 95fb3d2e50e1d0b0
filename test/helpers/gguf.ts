/**
 * Writes a tiny, valid GGUF model file for tests of the llama provider: a
 * 2-layer "llama" architecture transformer with seeded pseudo-random F32
 * weights and a SentencePiece ("llama") vocabulary with byte fallback. It
 * loads and runs in llama.cpp; its output is gibberish by design (it checks
 * the plumbing, not quality).
 *
 * GGUF v3 layout (all integers little-endian):
 *
 *   header        "GGUF" magic, uint32 version (3), uint64 tensor count,
 *                 uint64 metadata key/value count
 *   metadata      per entry: key (string), uint32 value type, value
 *   tensor infos  per tensor: name (string), uint32 n_dims, uint64 ne[n_dims],
 *                 uint32 ggml type, uint64 offset into the data section
 *   padding       zeros up to a multiple of `general.alignment` (default 32)
 *   data          tensor bytes; each tensor starts at a multiple of the alignment
 *
 * A string is a uint64 byte length followed by UTF-8 bytes (no terminator).
 * An array value is a uint32 element type, a uint64 count, then the elements.
 * Tensor dimensions are listed innermost first: ne[0] is the contiguous one,
 * so a matrix {ne0: n_in, ne1: n_out} stores n_out rows of n_in floats, and
 * llama.cpp multiplies each row with the input vector.
 */
import { writeFileSync } from 'node:fs';
import { mulberry32, type Rng } from '../../src/text/random.js';

/** GGUF metadata value types (the uint32 written before each value). */
const GgufType = {
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
} as const;

/** ggml tensor type of every tensor written here. */
const GGML_TYPE_F32 = 0;

/** SentencePiece token types (tokenizer.ggml.token_type). */
const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  BYTE: 6,
} as const;

const ALIGNMENT = 32;

export interface TinyGgufOptions {
  /** Seed of the weights (default 1). */
  readonly seed?: number;
  /** llama.context_length, the context the model was "trained" on (default 256). */
  readonly contextLength?: number;
  /** general.name (default "npcd tiny test model"). */
  readonly name?: string;
  /** A Jinja chat template stored as tokenizer.chat_template; none by default. */
  readonly chatTemplate?: string;
}

/** Shape of the model written. */
export const TINY_GGUF = {
  layers: 2,
  embedding: 64,
  heads: 4,
  feedForward: 128,
} as const;

type T = typeof GgufType;
type MetadataValue =
  | { readonly type: T['UINT32'] | T['INT32'] | T['FLOAT32']; readonly value: number }
  | { readonly type: T['BOOL']; readonly value: boolean }
  | { readonly type: T['STRING']; readonly value: string }
  | { readonly type: T['ARRAY']; readonly itemType: T['INT32'] | T['FLOAT32']; readonly value: readonly number[] }
  | { readonly type: T['ARRAY']; readonly itemType: T['STRING']; readonly value: readonly string[] };

interface Tensor {
  readonly name: string;
  /** ne[0] first (innermost). */
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** Grows a byte buffer while little-endian values are appended. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }

  i32(v: number): void {
    this.reserve(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }

  u64(v: number): void {
    this.reserve(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }

  f32(v: number): void {
    this.reserve(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }

  u8(v: number): void {
    this.reserve(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** GGUF string: uint64 byte length, then the UTF-8 bytes. */
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }

  /** Zeros up to the next multiple of `alignment`. */
  pad(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0);
  }

  result(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(w: ByteWriter, v: MetadataValue): void {
  w.u32(v.type);
  switch (v.type) {
    case GgufType.UINT32:
      w.u32(v.value);
      break;
    case GgufType.INT32:
      w.i32(v.value);
      break;
    case GgufType.FLOAT32:
      w.f32(v.value);
      break;
    case GgufType.BOOL:
      w.u8(v.value ? 1 : 0);
      break;
    case GgufType.STRING:
      w.string(v.value);
      break;
    case GgufType.ARRAY:
      w.u32(v.itemType);
      w.u64(v.value.length);
      if (v.itemType === GgufType.STRING) for (const s of v.value) w.string(s);
      else if (v.itemType === GgufType.INT32) for (const n of v.value) w.i32(n);
      else for (const n of v.value) w.f32(n);
      break;
  }
}

/**
 * The vocabulary, in id order: <unk> <s> </s>, the 256 byte tokens
 * <0x00>..<0xFF> (byte fallback: any text SentencePiece cannot cover is
 * spelled in bytes), "▁" (SentencePiece's space), the printable ASCII
 * characters, then a few merged pieces. The tokenizer merges adjacent pieces
 * whose concatenation is a token, highest score first, so every merged piece
 * is the concatenation of two earlier ones.
 */
function vocabulary(): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  const scores: number[] = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TokenType.BYTE);
    scores.push(0);
  }
  const singles = ['▁'];
  for (let c = 0x21; c <= 0x7e; c++) singles.push(String.fromCharCode(c));
  for (const s of singles) {
    tokens.push(s);
    types.push(TokenType.NORMAL);
    scores.push(-1000);
  }
  const merges = ['▁t', 'he', 'in', 'er', 'an', 'on', '▁a', '▁s', '▁w', '▁the', '▁an', 'ing', 'en', 'at', 'ou', '▁h'];
  merges.forEach((m, i) => {
    tokens.push(m);
    types.push(TokenType.NORMAL);
    scores.push(-i);
  });
  return { tokens, scores, types };
}

/** Gaussian-ish noise (sum of uniforms) with standard deviation about `std`. */
function noise(rng: Rng, std: number): number {
  return (rng() + rng() + rng() - 1.5) * 2 * std;
}

function matrix(rng: Rng, nIn: number, nOut: number, std: number): Float32Array {
  const m = new Float32Array(nIn * nOut);
  for (let i = 0; i < m.length; i++) m[i] = noise(rng, std);
  return m;
}

/**
 * The tensors. Dimension 0 of the residual stream is a constant "bias"
 * channel: every token embedding has it at 1, the layers never write to it
 * (row 0 of attn_output and ffn_down is zero), and the final norm weights it
 * by 10, so it ends as a large positive number. The output row of each token
 * has a weight on that channel: positive for the text pieces, strongly
 * negative for control and byte tokens. Sampling therefore picks printable
 * text and (practically) never the end-of-sequence token, so a reply runs to
 * maxTokens.
 */
function tensors(rng: Rng, vocab: { tokens: string[]; types: number[] }): Tensor[] {
  const { layers, embedding: d, feedForward: ff } = TINY_GGUF;
  const nVocab = vocab.tokens.length;
  const out: Tensor[] = [];

  const embd = matrix(rng, d, nVocab, 0.1);
  for (let v = 0; v < nVocab; v++) embd[v * d] = 1;
  out.push({ name: 'token_embd.weight', dims: [d, nVocab], data: embd });

  for (let l = 0; l < layers; l++) {
    const ones = new Float32Array(d).fill(1);
    const projection = (name: string, nIn: number, nOut: number, std: number): Tensor => {
      const data = matrix(rng, nIn, nOut, std);
      // Keep the bias channel out of the residual updates.
      if (name.endsWith('attn_output.weight') || name.endsWith('ffn_down.weight')) data.fill(0, 0, nIn);
      return { name: `blk.${l}.${name}`, dims: [nIn, nOut], data };
    };
    out.push({ name: `blk.${l}.attn_norm.weight`, dims: [d], data: ones });
    out.push(projection('attn_q.weight', d, d, 0.3));
    out.push(projection('attn_k.weight', d, d, 0.3));
    out.push(projection('attn_v.weight', d, d, 0.3));
    out.push(projection('attn_output.weight', d, d, 0.05));
    out.push({ name: `blk.${l}.ffn_norm.weight`, dims: [d], data: ones.slice() });
    out.push(projection('ffn_gate.weight', d, ff, 0.3));
    out.push(projection('ffn_up.weight', d, ff, 0.3));
    out.push(projection('ffn_down.weight', ff, d, 0.05));
  }

  // The final norm scales the bias channel up so that its weight in the output rows dominates.
  const outputNorm = new Float32Array(d).fill(1);
  outputNorm[0] = 10;
  out.push({ name: 'output_norm.weight', dims: [d], data: outputNorm });
  const output = matrix(rng, d, nVocab, 0.5);
  for (let v = 0; v < nVocab; v++) output[v * d] = vocab.types[v] === TokenType.NORMAL ? 0.5 : -2;
  out.push({ name: 'output.weight', dims: [d, nVocab], data: output });
  return out;
}

/** Builds the GGUF file's bytes. */
export function tinyGguf(opts: TinyGgufOptions = {}): Buffer {
  const { layers, embedding, heads, feedForward } = TINY_GGUF;
  const vocab = vocabulary();
  const all = tensors(mulberry32(opts.seed ?? 1), vocab);

  const metadata: [string, MetadataValue][] = [
    ['general.architecture', { type: GgufType.STRING, value: 'llama' }],
    ['general.name', { type: GgufType.STRING, value: opts.name ?? 'npcd tiny test model' }],
    ['general.alignment', { type: GgufType.UINT32, value: ALIGNMENT }],
    ['general.file_type', { type: GgufType.UINT32, value: 0 }],
    ['llama.context_length', { type: GgufType.UINT32, value: opts.contextLength ?? 256 }],
    ['llama.embedding_length', { type: GgufType.UINT32, value: embedding }],
    ['llama.block_count', { type: GgufType.UINT32, value: layers }],
    ['llama.feed_forward_length', { type: GgufType.UINT32, value: feedForward }],
    ['llama.attention.head_count', { type: GgufType.UINT32, value: heads }],
    ['llama.attention.head_count_kv', { type: GgufType.UINT32, value: heads }],
    ['llama.attention.layer_norm_rms_epsilon', { type: GgufType.FLOAT32, value: 1e-5 }],
    ['llama.rope.dimension_count', { type: GgufType.UINT32, value: embedding / heads }],
    ['llama.rope.freq_base', { type: GgufType.FLOAT32, value: 10000 }],
    ['llama.vocab_size', { type: GgufType.UINT32, value: vocab.tokens.length }],
    ['tokenizer.ggml.model', { type: GgufType.STRING, value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: GgufType.ARRAY, itemType: GgufType.STRING, value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: GgufType.ARRAY, itemType: GgufType.FLOAT32, value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: GgufType.ARRAY, itemType: GgufType.INT32, value: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', { type: GgufType.UINT32, value: 0 }],
    ['tokenizer.ggml.bos_token_id', { type: GgufType.UINT32, value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: GgufType.UINT32, value: 2 }],
    ['tokenizer.ggml.add_bos_token', { type: GgufType.BOOL, value: true }],
    ['tokenizer.ggml.add_eos_token', { type: GgufType.BOOL, value: false }],
  ];
  if (opts.chatTemplate !== undefined) metadata.push(['tokenizer.chat_template', { type: GgufType.STRING, value: opts.chatTemplate }]);

  const w = new ByteWriter();
  w.bytes(Buffer.from('GGUF', 'ascii'));
  w.u32(3);
  w.u64(all.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    writeValue(w, value);
  }

  // Tensor infos; offsets are relative to the (aligned) start of the data section.
  let offset = 0;
  const offsets: number[] = [];
  for (const t of all) {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const n of t.dims) w.u64(n);
    w.u32(GGML_TYPE_F32);
    w.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(t.data.byteLength / ALIGNMENT) * ALIGNMENT;
  }

  w.pad(ALIGNMENT);
  const dataStart = w.length;
  all.forEach((t, i) => {
    while (w.length < dataStart + offsets[i]!) w.u8(0);
    // Float32Array bytes are in host order; GGUF is little-endian, as x64 and arm64 are.
    w.bytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
  w.pad(ALIGNMENT);
  return w.result();
}

/** Writes the tiny model to `path`. */
export function writeTinyGguf(path: string, opts: TinyGgufOptions = {}): void {
  writeFileSync(path, tinyGguf(opts));
}
