// Minimal MessagePack helpers for the load generator.
//
// scanFrame() walks the top-level map of a server frame and extracts only the
// fields the generator needs (t, id, seq, code) without building an object.
// encodeChatPrefix()/writeStr() build client frames with a constant prefix so
// that only the per-turn id has to be encoded.

const T_TOKEN = 'token';
const T_START = 'start';
const T_DONE = 'done';
const T_ERROR = 'error';
const T_WELCOME = 'welcome';
const T_PONG = 'pong';
const T_CHAT = 'chat';
const T_HELLO = 'hello';

// Return a (usually interned) string for a short ASCII `t` value.
function readT(buf, s, len) {
  const c = buf[s];
  switch (len) {
    case 4:
      if (c === 0x64 && buf[s + 1] === 0x6f && buf[s + 2] === 0x6e && buf[s + 3] === 0x65) return T_DONE;
      if (c === 0x70 && buf[s + 1] === 0x6f && buf[s + 2] === 0x6e && buf[s + 3] === 0x67) return T_PONG;
      if (c === 0x63 && buf[s + 1] === 0x68 && buf[s + 2] === 0x61 && buf[s + 3] === 0x74) return T_CHAT;
      break;
    case 5:
      if (c === 0x74 && buf[s + 1] === 0x6f && buf[s + 2] === 0x6b && buf[s + 3] === 0x65 && buf[s + 4] === 0x6e) return T_TOKEN;
      if (c === 0x73 && buf[s + 1] === 0x74 && buf[s + 2] === 0x61 && buf[s + 3] === 0x72 && buf[s + 4] === 0x74) return T_START;
      if (c === 0x65 && buf[s + 1] === 0x72 && buf[s + 2] === 0x72 && buf[s + 3] === 0x6f && buf[s + 4] === 0x72) return T_ERROR;
      if (c === 0x68 && buf[s + 1] === 0x65 && buf[s + 2] === 0x6c && buf[s + 3] === 0x6c && buf[s + 4] === 0x6f) return T_HELLO;
      break;
    case 7:
      if (c === 0x77 && buf.latin1Slice(s, s + 7) === T_WELCOME) return T_WELCOME;
      break;
  }
  return buf.toString('utf8', s, s + len);
}

// Position just after the MessagePack value starting at p (throws on 0xc1 /
// truncated input via the caller's bounds check).
export function skipValue(buf, p) {
  const b = buf[p++];
  if (b < 0x80 || b >= 0xe0) return p; // fixints
  if (b <= 0x8f) { // fixmap
    let n = (b & 0x0f) * 2;
    while (n-- > 0) p = skipValue(buf, p);
    return p;
  }
  if (b <= 0x9f) { // fixarray
    let n = b & 0x0f;
    while (n-- > 0) p = skipValue(buf, p);
    return p;
  }
  if (b <= 0xbf) return p + (b & 0x1f); // fixstr
  switch (b) {
    case 0xc0: case 0xc2: case 0xc3: return p;
    case 0xc4: return p + 1 + buf[p];
    case 0xc5: return p + 2 + buf.readUInt16BE(p);
    case 0xc6: return p + 4 + buf.readUInt32BE(p);
    case 0xc7: return p + 2 + buf[p];
    case 0xc8: return p + 3 + buf.readUInt16BE(p);
    case 0xc9: return p + 5 + buf.readUInt32BE(p);
    case 0xca: return p + 4;
    case 0xcb: return p + 8;
    case 0xcc: return p + 1;
    case 0xcd: return p + 2;
    case 0xce: return p + 4;
    case 0xcf: return p + 8;
    case 0xd0: return p + 1;
    case 0xd1: return p + 2;
    case 0xd2: return p + 4;
    case 0xd3: return p + 8;
    case 0xd4: return p + 2;
    case 0xd5: return p + 3;
    case 0xd6: return p + 5;
    case 0xd7: return p + 9;
    case 0xd8: return p + 17;
    case 0xd9: return p + 1 + buf[p];
    case 0xda: return p + 2 + buf.readUInt16BE(p);
    case 0xdb: return p + 4 + buf.readUInt32BE(p);
    case 0xdc: { let n = buf.readUInt16BE(p); p += 2; while (n-- > 0) p = skipValue(buf, p); return p; }
    case 0xdd: { let n = buf.readUInt32BE(p); p += 4; while (n-- > 0) p = skipValue(buf, p); return p; }
    case 0xde: { let n = buf.readUInt16BE(p) * 2; p += 2; while (n-- > 0) p = skipValue(buf, p); return p; }
    case 0xdf: { let n = buf.readUInt32BE(p) * 2; p += 4; while (n-- > 0) p = skipValue(buf, p); return p; }
    default: throw new Error('msgpack: invalid byte 0x' + (b === undefined ? 'EOF' : b.toString(16)));
  }
}

// If a string header starts at p, return its length and set strPos; else -1.
let strPos = 0;
function strHeader(buf, p) {
  const b = buf[p];
  if (b >= 0xa0 && b <= 0xbf) { strPos = p + 1; return b & 0x1f; }
  if (b === 0xd9) { strPos = p + 2; return buf[p + 1]; }
  if (b === 0xda) { strPos = p + 3; return buf.readUInt16BE(p + 1); }
  if (b === 0xdb) { strPos = p + 5; return buf.readUInt32BE(p + 1); }
  return -1;
}

// Integer value at p (any msgpack int encoding); NaN for non-integers.
function readInt(buf, p) {
  const b = buf[p];
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xcc: return buf[p + 1];
    case 0xcd: return buf.readUInt16BE(p + 1);
    case 0xce: return buf.readUInt32BE(p + 1);
    case 0xcf: return Number(buf.readBigUInt64BE(p + 1));
    case 0xd0: return buf.readInt8(p + 1);
    case 0xd1: return buf.readInt16BE(p + 1);
    case 0xd2: return buf.readInt32BE(p + 1);
    case 0xd3: return Number(buf.readBigInt64BE(p + 1));
    case 0xcb: { const v = buf.readDoubleBE(p + 1); return Number.isInteger(v) ? v : NaN; }
    case 0xca: { const v = buf.readFloatBE(p + 1); return Number.isInteger(v) ? v : NaN; }
  }
  return NaN;
}

/**
 * Scan a top-level MessagePack map in buf[start, end).
 * Fills `out`:
 *   t      string | null
 *   idPos  byte offset of the id string's bytes, -1 if absent / not a string
 *   idLen  length in bytes of the id string
 *   idNum  numeric id if the id was an integer (else NaN)
 *   seq    integer or NaN if absent
 *   code   string | null (error code)
 * Returns true if the payload is a map and was scanned completely; false if
 * it is not a map or is malformed.
 */
export function scanFrame(buf, start, end, out) {
  out.t = null; out.idPos = -1; out.idLen = 0; out.idNum = NaN; out.seq = NaN; out.code = null;
  let p = start;
  if (end - start < 1) return false;
  const b = buf[p++];
  let n;
  if (b >= 0x80 && b <= 0x8f) n = b & 0x0f;
  else if (b === 0xde) { if (end - p < 2) return false; n = buf.readUInt16BE(p); p += 2; }
  else if (b === 0xdf) { if (end - p < 4) return false; n = buf.readUInt32BE(p); p += 4; }
  else return false;
  try {
    for (let i = 0; i < n; i++) {
      const klen = strHeader(buf, p);
      if (klen < 0) { p = skipValue(buf, skipValue(buf, p)); continue; }
      const ks = strPos;
      p = ks + klen;
      const k0 = buf[ks];
      if (klen === 1 && k0 === 0x74) { // t
        const vlen = strHeader(buf, p);
        if (vlen >= 0) { out.t = readT(buf, strPos, vlen); p = strPos + vlen; } else p = skipValue(buf, p);
      } else if (klen === 2 && k0 === 0x69 && buf[ks + 1] === 0x64) { // id
        const vlen = strHeader(buf, p);
        if (vlen >= 0) { out.idPos = strPos; out.idLen = vlen; p = strPos + vlen; } else { out.idNum = readInt(buf, p); p = skipValue(buf, p); }
      } else if (klen === 3 && k0 === 0x73 && buf[ks + 1] === 0x65 && buf[ks + 2] === 0x71) { // seq
        out.seq = readInt(buf, p); p = skipValue(buf, p);
      } else if (klen === 4 && k0 === 0x63 && buf[ks + 1] === 0x6f && buf[ks + 2] === 0x64 && buf[ks + 3] === 0x65) { // code
        const vlen = strHeader(buf, p);
        if (vlen >= 0) { out.code = buf.toString('utf8', strPos, strPos + vlen); p = strPos + vlen; } else { const v = readInt(buf, p); out.code = Number.isNaN(v) ? '?' : String(v); p = skipValue(buf, p); }
      } else {
        p = skipValue(buf, p);
      }
      if (p > end) return false;
    }
  } catch {
    return false;
  }
  return p <= end;
}

/** The id found by scanFrame as a string (null if none). */
export function scannedId(buf, out) {
  if (out.idPos >= 0) return buf.toString('utf8', out.idPos, out.idPos + out.idLen);
  if (!Number.isNaN(out.idNum)) return String(out.idNum);
  return null;
}

/** Byte-compare the scanned id against an expected id (Buffer). */
export function idEquals(buf, out, idBytes) {
  const len = idBytes.length;
  if (out.idLen !== len || out.idPos < 0) return false;
  const p = out.idPos;
  for (let i = 0; i < len; i++) if (buf[p + i] !== idBytes[i]) return false;
  return true;
}

// --- encoding ---------------------------------------------------------------

export function strBytes(s) {
  const body = Buffer.from(s, 'utf8');
  const n = body.length;
  let head;
  if (n < 32) head = Buffer.from([0xa0 | n]);
  else if (n < 0x100) head = Buffer.from([0xd9, n]);
  else if (n < 0x10000) { head = Buffer.alloc(3); head[0] = 0xda; head.writeUInt16BE(n, 1); }
  else { head = Buffer.alloc(5); head[0] = 0xdb; head.writeUInt32BE(n, 1); }
  return Buffer.concat([head, body]);
}

/**
 * Bytes of a map {t:'chat', character, text, id: <appended later>} up to and
 * including the key "id". The caller appends the id as a MessagePack string.
 * (Map entries are order-independent; id is last so the prefix is constant.)
 */
export function encodeChatPrefix(character, text, t = 'chat') {
  return Buffer.concat([
    Buffer.from([0x84]),
    strBytes('t'), strBytes(t),
    strBytes('character'), strBytes(character),
    strBytes('text'), strBytes(text),
    strBytes('id'),
  ]);
}

/** {t:'hello', v:1} */
export function encodeHello(extra = null) {
  const parts = [strBytes('t'), strBytes('hello'), strBytes('v'), Buffer.from([0x01])];
  let n = 2;
  if (extra) {
    for (const [k, v] of Object.entries(extra)) {
      if (typeof v === 'string') { parts.push(strBytes(k), strBytes(v)); n++; }
      else if (typeof v === 'boolean') { parts.push(strBytes(k), Buffer.from([v ? 0xc3 : 0xc2])); n++; }
    }
  }
  return Buffer.concat([Buffer.from([0x80 | n]), ...parts]);
}

/** {t:'ping', ts:<float64>} */
export function encodePing(ts) {
  const b = Buffer.alloc(1 + 2 + 5 + 3 + 9);
  let p = 0;
  b[p++] = 0x82;
  b[p++] = 0xa1; b[p++] = 0x74;
  b[p++] = 0xa4; p += b.write('ping', p, 'latin1');
  b[p++] = 0xa2; p += b.write('ts', p, 'latin1');
  b[p++] = 0xcb; b.writeDoubleBE(ts, p); p += 8;
  return b.subarray(0, p);
}

/** Compare the scanned id against an ASCII string without allocating. */
export function idEqualsStr(buf, out, s) {
  const len = s.length;
  if (out.idLen !== len || out.idPos < 0) return false;
  const p = out.idPos;
  for (let i = 0; i < len; i++) if (buf[p + i] !== s.charCodeAt(i)) return false;
  return true;
}
