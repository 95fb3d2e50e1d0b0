/**
 * Just enough PNG for character cards: split a file into chunks (checking the
 * signature, every length and CRC, IHDR first and IEND last), read the text
 * chunks (tEXt, zTXt, iTXt), and write a file with new tEXt chunks before
 * IEND. Image data is never decoded here; chunks are copied byte for byte.
 * Pure: no I/O. Format: https://www.w3.org/TR/png-3/ (chunk layout §5.3,
 * CRC Annex D, text chunks §11.3.3).
 */
import { deflateSync, inflateSync } from 'node:zlib';

export const PNG_SIGNATURE: Uint8Array = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
/** Files larger than this are refused before reading a chunk. */
export const MAX_PNG_BYTES = 32 * 1024 * 1024;
/** Chunks longer than this are refused (the PNG format allows 2^31-1). */
export const MAX_PNG_CHUNK_BYTES = 16 * 1024 * 1024;
/** Decompressed zTXt/iTXt text longer than this is refused. */
export const MAX_PNG_TEXT_BYTES = 16 * 1024 * 1024;

// Table-driven CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320), as PNG
// Annex D specifies. zlib.crc32 only exists from Node 22.2.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of `data`; pass a previous result as `crc` to continue over more bytes. */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export interface PngChunk {
  /** Four ASCII letters, e.g. 'IHDR', 'tEXt'. */
  readonly type: string;
  /** The chunk's data (a view into the input; not copied). */
  readonly data: Uint8Array;
  /** Byte offset of the chunk's length field in the file. */
  readonly offset: number;
}

export interface PngReadResult {
  /** All chunks up to and including IEND, or undefined when the file is not a valid PNG. */
  readonly chunks: PngChunk[] | undefined;
  /** What is wrong, each message with the byte offset it concerns. */
  readonly issues: string[];
}

const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const hex = (n: number): string => '0x' + n.toString(16).padStart(8, '0');
const MiB = (n: number): string => `${n / (1024 * 1024)} MiB`;

/**
 * Splits a PNG file into its chunks. Never throws on bad input: every problem
 * found is an issue, and `chunks` is undefined when there is any. Bytes after
 * IEND are ignored (some tools append data there).
 */
export function readPngChunks(bytes: Uint8Array): PngReadResult {
  const issues: string[] = [];
  if (bytes.length > MAX_PNG_BYTES) {
    return { chunks: undefined, issues: [`file is ${bytes.length} bytes; the limit is ${MiB(MAX_PNG_BYTES)}`] };
  }
  if (bytes.length < PNG_SIGNATURE.length || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    return { chunks: undefined, issues: ['not a PNG file (the 8-byte PNG signature is missing)'] };
  }
  const chunks: PngChunk[] = [];
  let p = PNG_SIGNATURE.length;
  let ended = false;
  let stopped = false;
  while (p < bytes.length) {
    const n = chunks.length;
    if (p + 8 > bytes.length) {
      issues.push(`truncated: chunk ${n} at byte ${p} has an incomplete header`);
      stopped = true;
      break;
    }
    const length = u32(bytes, p);
    const typeBytes = bytes.subarray(p + 4, p + 8);
    const type = String.fromCharCode(...typeBytes);
    if (!/^[A-Za-z]{4}$/.test(type)) {
      issues.push(`chunk ${n} at byte ${p}: invalid chunk type ${JSON.stringify(type)}`);
      stopped = true;
      break;
    }
    if (length > 0x7fffffff) {
      issues.push(`chunk ${n} (${type}) at byte ${p}: length ${length} exceeds the PNG maximum of 2^31-1`);
      stopped = true;
      break;
    }
    if (length > MAX_PNG_CHUNK_BYTES) {
      issues.push(`chunk ${n} (${type}) at byte ${p}: length ${length} exceeds the limit of ${MiB(MAX_PNG_CHUNK_BYTES)}`);
      stopped = true;
      break;
    }
    if (p + 12 + length > bytes.length) {
      issues.push(`truncated: chunk ${n} (${type}) at byte ${p} needs ${12 + length} bytes, the file has ${bytes.length - p} left`);
      stopped = true;
      break;
    }
    const data = bytes.subarray(p + 8, p + 8 + length);
    const stored = u32(bytes, p + 8 + length);
    const computed = crc32(data, crc32(typeBytes));
    if (stored !== computed) {
      issues.push(`chunk ${n} (${type}) at byte ${p}: CRC mismatch (stored ${hex(stored)}, computed ${hex(computed)})`);
    }
    if (n === 0 && (type !== 'IHDR' || length !== 13)) {
      issues.push(`chunk 0 at byte ${p} is ${type} (${length} bytes); a PNG starts with a 13-byte IHDR chunk`);
    }
    chunks.push({ type, data, offset: p });
    p += 12 + length;
    if (type === 'IEND') {
      if (length !== 0) issues.push(`chunk ${n} (IEND) at byte ${chunks[n]!.offset}: IEND must be empty, it has ${length} bytes`);
      ended = true;
      break;
    }
  }
  if (!ended && !stopped) issues.push(`truncated: no IEND chunk (file ends at byte ${bytes.length})`);
  return issues.length > 0 ? { chunks: undefined, issues } : { chunks, issues };
}

export interface PngText {
  readonly keyword: string;
  readonly text: string;
  readonly chunkType: 'tEXt' | 'zTXt' | 'iTXt';
  /** Index of the chunk in the chunk list. */
  readonly index: number;
}

export const TEXT_CHUNK_TYPES: ReadonlySet<string> = new Set(['tEXt', 'zTXt', 'iTXt']);

/**
 * The keyword of a tEXt/zTXt/iTXt chunk (Latin-1, 1–79 bytes, up to the first
 * NUL), or undefined when the chunk has none. Cheap: nothing is decompressed.
 */
export function textChunkKeyword(chunk: PngChunk): string | undefined {
  if (!TEXT_CHUNK_TYPES.has(chunk.type)) return undefined;
  const nul = chunk.data.indexOf(0);
  if (nul < 1 || nul > 79) return undefined;
  return Buffer.from(chunk.data.buffer, chunk.data.byteOffset, nul).toString('latin1');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function inflate(data: Uint8Array, maxBytes: number): Uint8Array {
  // maxOutputLength makes zlib stop (with a RangeError) instead of expanding a bomb.
  return inflateSync(data, { maxOutputLength: maxBytes });
}

/**
 * Decodes one text chunk: tEXt (Latin-1), zTXt (zlib-compressed Latin-1), or
 * iTXt (UTF-8, optionally compressed; language tag and translated keyword are
 * skipped). Returns the problem as a string instead of throwing.
 */
export function decodeTextChunk(chunk: PngChunk, index: number, maxTextBytes = MAX_PNG_TEXT_BYTES): PngText | string {
  const where = `chunk ${index} (${chunk.type}) at byte ${chunk.offset}`;
  const keyword = textChunkKeyword(chunk);
  if (keyword === undefined) return `${where}: no keyword (1-79 bytes ending in a NUL byte)`;
  const rest = chunk.data.subarray(keyword.length + 1);
  const type = chunk.type as PngText['chunkType'];
  try {
    if (type === 'tEXt') {
      return { keyword, text: Buffer.from(rest.buffer, rest.byteOffset, rest.length).toString('latin1'), chunkType: type, index };
    }
    if (type === 'zTXt') {
      if (rest[0] !== 0) return `${where}: unknown compression method ${rest[0] ?? '(none)'}`;
      const raw = inflate(rest.subarray(1), maxTextBytes);
      return { keyword, text: Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1'), chunkType: type, index };
    }
    // iTXt: flag, method, language tag\0, translated keyword\0, text.
    const flag = rest[0];
    const method = rest[1];
    if (flag === undefined || method === undefined || flag > 1) return `${where}: malformed iTXt header`;
    const langEnd = rest.indexOf(0, 2);
    const transEnd = langEnd < 0 ? -1 : rest.indexOf(0, langEnd + 1);
    if (transEnd < 0) return `${where}: malformed iTXt header`;
    let body = rest.subarray(transEnd + 1);
    if (flag === 1) {
      if (method !== 0) return `${where}: unknown compression method ${method}`;
      body = inflate(body, maxTextBytes);
    }
    return { keyword, text: utf8.decode(body), chunkType: type, index };
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e instanceof RangeError || e.code === 'ERR_BUFFER_TOO_LARGE') return `${where}: text decompresses to more than ${maxTextBytes} bytes`;
    if (e instanceof TypeError) return `${where}: text is not valid UTF-8`;
    return `${where}: ${e.message}`;
  }
}

/** Encodes one chunk: length, type, data, CRC. */
export function encodeChunk(type: string, data: Uint8Array): Uint8Array {
  if (!/^[A-Za-z]{4}$/.test(type)) throw new TypeError(`chunk type must be 4 ASCII letters, got ${JSON.stringify(type)}`);
  if (data.length > MAX_PNG_CHUNK_BYTES) throw new RangeError(`chunk data is ${data.length} bytes; the limit is ${MiB(MAX_PNG_CHUNK_BYTES)}`);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const KEYWORD_RE = /^[\x20-\x7e\xa1-\xff]{1,79}$/;

/** A tEXt chunk; keyword and text must be Latin-1 (keyword 1-79 printable characters, text without NUL). */
export function encodeTextChunk(keyword: string, text: string): Uint8Array {
  if (!KEYWORD_RE.test(keyword) || keyword.startsWith(' ') || keyword.endsWith(' ') || keyword.includes('  ')) {
    throw new TypeError(`tEXt keyword must be 1-79 printable Latin-1 characters without leading, trailing or double spaces, got ${JSON.stringify(keyword)}`);
  }
  if (/[^\x01-\xff]/.test(text)) throw new TypeError('tEXt text must be Latin-1 without NUL characters');
  return encodeChunk('tEXt', Buffer.from(`${keyword}\0${text}`, 'latin1'));
}

export interface TextToWrite {
  readonly keyword: string;
  readonly text: string;
}

/**
 * A copy of `png` with every text chunk (tEXt/zTXt/iTXt) whose keyword
 * `remove` accepts dropped and `texts` added as tEXt chunks just before IEND.
 * All other chunks are copied byte for byte. Throws TypeError when `png` is not
 * a valid PNG (callers check input with readPngChunks first).
 */
export function writePngTexts(png: Uint8Array, texts: readonly TextToWrite[], remove: (keyword: string) => boolean = () => false): Uint8Array {
  const { chunks, issues } = readPngChunks(png);
  if (!chunks) throw new TypeError(`not a valid PNG: ${issues.join('; ')}`);
  const parts: Uint8Array[] = [PNG_SIGNATURE];
  for (const chunk of chunks) {
    if (chunk.type === 'IEND') for (const t of texts) parts.push(encodeTextChunk(t.keyword, t.text));
    const keyword = textChunkKeyword(chunk);
    if (keyword !== undefined && remove(keyword)) continue;
    parts.push(png.subarray(chunk.offset, chunk.offset + 12 + chunk.data.length));
  }
  return Buffer.concat(parts);
}

/**
 * A minimal valid PNG: 1×1, 8-bit RGBA, one transparent pixel. The image data
 * is a real zlib stream (filter byte 0, then 4 zero bytes), so any decoder
 * reads it.
 */
export function minimalPng(): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, 1); // width
  view.setUint32(4, 1); // height
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type: RGBA
  // compression 0 (deflate), filter 0 (adaptive), interlace 0 (none)
  const idat = deflateSync(Uint8Array.of(0, 0, 0, 0, 0));
  return Buffer.concat([PNG_SIGNATURE, encodeChunk('IHDR', ihdr), encodeChunk('IDAT', idat), encodeChunk('IEND', new Uint8Array(0))]);
}
