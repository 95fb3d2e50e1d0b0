import { readFileSync } from 'node:fs';
import { deflateSync, inflateSync } from 'node:zlib';
import t from 'tap';
import {
  crc32,
  decodeTextChunk,
  encodeChunk,
  encodeTextChunk,
  MAX_PNG_BYTES,
  minimalPng,
  PNG_SIGNATURE,
  readPngChunks,
  textChunkKeyword,
  writePngTexts,
} from '../../src/characters/cards/png.js';
import { sharedFixture } from '../helpers/fixtures.js';

const FIXTURE = readFileSync(sharedFixture('cards/seraphina.v2.png'));

/**
 * An image check independent of the card code: every chunk's CRC (against a
 * bitwise CRC, not the table), IHDR first, IEND last, and the IDAT stream
 * inflates to exactly height × (1 + width × bytes per pixel) bytes with valid
 * filter bytes (8-bit, non-interlaced images only).
 */
function checkImage(png: Uint8Array): { width: number; height: number; types: string[] } {
  const b = Buffer.from(png.buffer, png.byteOffset, png.length);
  if (!b.subarray(0, 8).equals(Buffer.from(PNG_SIGNATURE))) throw new Error('signature');
  const bitwiseCrc = (data: Uint8Array) => {
    let c = 0xffffffff;
    for (const byte of data) {
      c ^= byte;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    }
    return (c ^ 0xffffffff) >>> 0;
  };
  const types: string[] = [];
  const idat: Buffer[] = [];
  let ihdr: Buffer | undefined;
  let p = 8;
  while (p < b.length) {
    const len = b.readUInt32BE(p);
    const type = b.toString('latin1', p + 4, p + 8);
    if (bitwiseCrc(b.subarray(p + 4, p + 8 + len)) !== b.readUInt32BE(p + 8 + len)) throw new Error(`CRC of ${type}`);
    types.push(type);
    if (type === 'IHDR') ihdr = b.subarray(p + 8, p + 8 + len);
    if (type === 'IDAT') idat.push(b.subarray(p + 8, p + 8 + len));
    p += 12 + len;
    if (type === 'IEND') break;
  }
  if (types[0] !== 'IHDR' || types.at(-1) !== 'IEND' || !ihdr) throw new Error('layout');
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[ihdr[9]!];
  if (ihdr[8] !== 8 || !channels || ihdr[12] !== 0) throw new Error('unsupported test image');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = 1 + width * channels;
  if (raw.length !== height * stride) throw new Error(`IDAT inflates to ${raw.length}, expected ${height * stride}`);
  for (let y = 0; y < height; y++) if (raw[y * stride]! > 4) throw new Error(`bad filter byte on row ${y}`);
  return { width, height, types };
}

const chunk = (type: string, data: Uint8Array | string) => encodeChunk(type, typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
/** A PNG from the minimal image's IHDR/IDAT, extra chunks, then IEND. */
function pngWith(...extra: Uint8Array[]): Buffer {
  const base = readPngChunks(minimalPng()).chunks!;
  const keep = base.filter((c) => c.type !== 'IEND').map((c) => encodeChunk(c.type, c.data));
  return Buffer.concat([PNG_SIGNATURE, ...keep, ...extra, chunk('IEND', new Uint8Array(0))]);
}

t.test('crc32 matches the standard check values', async (t) => {
  t.equal(crc32(new Uint8Array(0)), 0);
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the CRC-32/ISO-HDLC check value');
  t.equal(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
  const all = Buffer.from('123456789');
  t.equal(crc32(all.subarray(4), crc32(all.subarray(0, 4))), 0xcbf43926, 'continues over split input');
  t.equal(crc32(Buffer.from('IEND')), 0xae426082, 'the CRC every PNG ends with');
});

t.test('reads the fixture PNG: chunks, lengths, CRCs', async (t) => {
  const { chunks, issues } = readPngChunks(FIXTURE);
  t.same(issues, []);
  t.same(chunks?.map((c) => [c.type, c.data.length]), [['IHDR', 13], ['IDAT', 511505], ['tEXt', 18038], ['IEND', 0]]);
  t.equal(chunks![0]!.offset, 8);
  t.equal(textChunkKeyword(chunks![2]!), 'chara');
  t.equal(textChunkKeyword(chunks![1]!), undefined, 'IDAT is no text chunk');
  const text = decodeTextChunk(chunks![2]!, 2);
  if (typeof text === 'string') return t.fail(text);
  t.equal(text.keyword, 'chara');
  t.equal(text.chunkType, 'tEXt');
  t.match(text.text, /^[A-Za-z0-9+/=]+$/, 'base64 text');
  t.same(checkImage(FIXTURE), { width: 400, height: 600, types: ['IHDR', 'IDAT', 'tEXt', 'IEND'] });
});

t.test('minimalPng is a valid 1x1 image', async (t) => {
  const png = minimalPng();
  t.same(checkImage(png), { width: 1, height: 1, types: ['IHDR', 'IDAT', 'IEND'] });
  t.same(readPngChunks(png).issues, []);
});

t.test('corrupt PNGs give issues, never throw', async (t) => {
  const one = (bytes: Uint8Array) => {
    const r = readPngChunks(bytes);
    t.equal(r.chunks, undefined);
    t.ok(r.issues.length > 0);
    return r.issues.join('\n');
  };
  t.match(one(new Uint8Array(0)), /not a PNG file/);
  t.match(one(Buffer.from('{"name":"x"}')), /not a PNG file/);
  t.match(one(PNG_SIGNATURE), /no IEND chunk/, 'signature only');

  const badCrc = Buffer.from(FIXTURE);
  const at = 8 + 12 + 13 + 8 + 1000; // a byte inside IDAT
  badCrc[at] = badCrc[at]! ^ 0x01;
  t.match(one(badCrc), /chunk 1 \(IDAT\) at byte 33: CRC mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)/);

  t.match(one(FIXTURE.subarray(0, FIXTURE.length - 12)), /no IEND chunk/, 'cut before IEND');
  t.match(one(FIXTURE.subarray(0, 1000)), /truncated: chunk 1 \(IDAT\) at byte 33 needs 511517 bytes, the file has 967 left/);
  t.match(one(FIXTURE.subarray(0, 37)), /truncated: chunk 1 at byte 33 has an incomplete header/);

  const huge = Buffer.from(FIXTURE);
  huge.writeUInt32BE(0xfffffff0, 33);
  t.match(one(huge), /length 4294967280 exceeds the PNG maximum/);
  huge.writeUInt32BE(16 * 1024 * 1024 + 1, 33);
  t.match(one(huge), /length 16777217 exceeds the limit of 16 MiB/);

  const badType = Buffer.from(FIXTURE);
  badType.write('ID1T', 37, 'latin1');
  t.match(one(badType), /invalid chunk type "ID1T"/);

  t.match(one(Buffer.concat([PNG_SIGNATURE, chunk('tEXt', 'a\0b'), chunk('IEND', '')])), /chunk 0 at byte 8 is tEXt \(3 bytes\); a PNG starts with a 13-byte IHDR chunk/);
  const png = minimalPng();
  t.match(one(Buffer.concat([png.subarray(0, png.length - 12), chunk('IEND', 'x')])), /IEND must be empty/);
  t.match(one(new Uint8Array(MAX_PNG_BYTES + 1)), /the limit is 32 MiB/);
});

t.test('every truncation of a PNG is an issue', async (t) => {
  const png = pngWith(encodeTextChunk('chara', 'abcd'));
  let issues = 0;
  for (let n = 0; n < png.length; n++) if (readPngChunks(png.subarray(0, n)).chunks === undefined) issues++;
  t.equal(issues, png.length);
});

t.test('bytes after IEND are ignored', async (t) => {
  const r = readPngChunks(Buffer.concat([minimalPng(), Buffer.from('PK\x03\x04 trailing zip')]));
  t.same(r.issues, []);
  t.equal(r.chunks?.at(-1)?.type, 'IEND');
});

t.test('text chunks: tEXt, zTXt, iTXt', async (t) => {
  const zt = chunk('zTXt', Buffer.concat([Buffer.from('k1\0\0', 'latin1'), deflateSync(Buffer.from('caf\xe9', 'latin1'))]));
  const itPlain = chunk('iTXt', Buffer.concat([Buffer.from('k2\0\0\0en\0Schlüssel\0', 'utf8'), Buffer.from('日本語 ✓', 'utf8')]));
  const itZ = chunk('iTXt', Buffer.concat([Buffer.from('k3\0\x01\0\0\0', 'latin1'), deflateSync(Buffer.from('压缩', 'utf8'))]));
  const tx = encodeTextChunk('k0', 'caf\xe9');
  const { chunks } = readPngChunks(pngWith(tx, zt, itPlain, itZ));
  const texts = chunks!.map((c, i) => decodeTextChunk(c, i)).filter((x) => typeof x !== 'string' || !/no keyword/.test(x));
  t.same(texts.map((x) => (typeof x === 'string' ? x : [x.keyword, x.chunkType, x.text])), [
    ['k0', 'tEXt', 'café'],
    ['k1', 'zTXt', 'café'],
    ['k2', 'iTXt', '日本語 ✓'],
    ['k3', 'iTXt', '压缩'],
  ]);
});

t.test('bad text chunks are reported as strings', async (t) => {
  const decode = (c: Uint8Array) => {
    const parsed = readPngChunks(pngWith(c)).chunks!;
    return decodeTextChunk(parsed[2]!, 2, 1024);
  };
  t.match(decode(chunk('tEXt', 'no separator')), /no keyword/);
  t.match(decode(chunk('tEXt', '\0empty keyword')), /no keyword/);
  t.match(decode(chunk('tEXt', 'k'.repeat(80) + '\0x')), /no keyword/);
  t.match(decode(chunk('zTXt', 'k\0\x01abc')), /unknown compression method 1/);
  t.match(decode(chunk('zTXt', 'k\0\0not zlib')), /chunk 2 \(zTXt\) at byte \d+: /);
  t.match(decode(chunk('zTXt', Buffer.concat([Buffer.from('k\0\0'), deflateSync(Buffer.alloc(1_000_000))]))), /decompresses to more than 1024 bytes/, 'a zlib bomb stops at the limit');
  t.match(decode(chunk('iTXt', Buffer.concat([Buffer.from('k\0\0\0\0\0'), Buffer.from([0xff, 0xfe])]))), /not valid UTF-8/);
  t.match(decode(chunk('iTXt', 'k\0\0\0en')), /malformed iTXt header/);
  t.match(decode(chunk('iTXt', 'k\0\x02\0\0\0x')), /malformed iTXt header/);
});

t.test('encodeTextChunk checks keyword and text', async (t) => {
  t.throws(() => encodeTextChunk('', 'x'), TypeError);
  t.throws(() => encodeTextChunk(' chara', 'x'), TypeError);
  t.throws(() => encodeTextChunk('a'.repeat(80), 'x'), TypeError);
  t.throws(() => encodeTextChunk('ключ', 'x'), TypeError);
  t.throws(() => encodeTextChunk('chara', 'a\0b'), TypeError);
  t.throws(() => encodeTextChunk('chara', '✓'), TypeError);
  t.throws(() => encodeChunk('IDA', new Uint8Array(0)), TypeError);
  const c = encodeTextChunk('chara', 'QUJD');
  t.same([...c.subarray(0, 8)], [0, 0, 0, 10, ...Buffer.from('tEXt')]);
  t.equal(Buffer.from(c.subarray(8, 18)).toString('latin1'), 'chara\0QUJD');
  t.equal(Buffer.from(c).readUInt32BE(18), crc32(c.subarray(4, 18)));
});

t.test('writePngTexts replaces card chunks, inserts before IEND, copies the rest', async (t) => {
  const out = writePngTexts(FIXTURE, [{ keyword: 'chara', text: 'AAAA' }, { keyword: 'ccv3', text: 'BBBB' }], (k) => k === 'chara' || k === 'ccv3');
  const before = readPngChunks(FIXTURE).chunks!;
  const after = readPngChunks(out).chunks!;
  t.same(after.map((c) => c.type), ['IHDR', 'IDAT', 'tEXt', 'tEXt', 'IEND']);
  t.ok(Buffer.from(after[1]!.data).equals(Buffer.from(before[1]!.data)), 'IDAT copied byte for byte');
  t.same(after.slice(2, 4).map((c) => decodeTextChunk(c, 0)), [
    { keyword: 'chara', text: 'AAAA', chunkType: 'tEXt', index: 0 },
    { keyword: 'ccv3', text: 'BBBB', chunkType: 'tEXt', index: 0 },
  ]);
  checkImage(out);

  const kept = writePngTexts(FIXTURE, [{ keyword: 'Comment', text: 'hi' }]);
  t.same(readPngChunks(kept).chunks!.map((c) => textChunkKeyword(c) ?? c.type), ['IHDR', 'IDAT', 'chara', 'Comment', 'IEND'], 'nothing removed by default');
  t.throws(() => writePngTexts(FIXTURE.subarray(0, 100), []), { name: 'TypeError', message: /not a valid PNG: truncated/ });
});
