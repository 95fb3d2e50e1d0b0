// Minimal RFC 6455 WebSocket client over raw `net` sockets, built for load
// generation: no per-message object allocation beyond what the caller does,
// masking with a fresh random key per frame, a streaming frame parser that
// copes with frames split across TCP chunks and many frames per chunk.

import net from 'node:net';
import crypto from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OP_CONT = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

const MAX_MESSAGE = 64 * 1024 * 1024;
const MAX_HANDSHAKE = 16 * 1024;

// ---- random masking keys from a pool --------------------------------------
const POOL_SIZE = 16 * 1024;
const maskPool = Buffer.allocUnsafe(POOL_SIZE);
let maskPos = POOL_SIZE;

function nextMask(dst, at) {
  if (maskPos + 4 > POOL_SIZE) { crypto.randomFillSync(maskPool); maskPos = 0; }
  dst[at] = maskPool[maskPos];
  dst[at + 1] = maskPool[maskPos + 1];
  dst[at + 2] = maskPool[maskPos + 2];
  dst[at + 3] = maskPool[maskPos + 3];
  maskPos += 4;
}

function headerLen(n) { return n < 126 ? 6 : n < 0x10000 ? 8 : 14; }

// Write a masked frame header at dst[0..]; returns offset of the payload.
function writeHeader(dst, opcode, n, fin = true) {
  dst[0] = (fin ? 0x80 : 0) | opcode;
  let p;
  if (n < 126) { dst[1] = 0x80 | n; p = 2; }
  else if (n < 0x10000) { dst[1] = 0x80 | 126; dst.writeUInt16BE(n, 2); p = 4; }
  else { dst[1] = 0x80 | 127; dst.writeUInt32BE(Math.floor(n / 0x100000000), 2); dst.writeUInt32BE(n >>> 0, 6); p = 10; }
  nextMask(dst, p);
  return p + 4;
}

function maskInto(dst, off, src, srcStart, srcEnd, mk, maskPhase) {
  const m0 = dst[mk], m1 = dst[mk + 1], m2 = dst[mk + 2], m3 = dst[mk + 3];
  const masks = [m0, m1, m2, m3];
  let j = maskPhase;
  for (let i = srcStart; i < srcEnd; i++, j++) dst[off++] = src[i] ^ masks[j & 3];
  return off;
}

/** Encode a complete masked client frame. */
export function encodeFrame(opcode, payload, fin = true) {
  const n = payload.length;
  const out = Buffer.allocUnsafe(headerLen(n) + n);
  const po = writeHeader(out, opcode, n, fin);
  maskInto(out, po, payload, 0, n, po - 4, 0);
  return out;
}

/**
 * Encode a masked binary frame whose payload is `prefix` followed by the
 * MessagePack string `s` (ASCII, < 32 bytes). Used for chat frames where
 * only the id changes per turn. Returns the frame; also stores the raw id
 * bytes into `idOut` (Buffer of sufficient size) when given.
 */
export function encodePrefixedStrFrame(prefix, s) {
  const sl = s.length; // ASCII only
  const n = prefix.length + 1 + sl;
  const out = Buffer.allocUnsafe(headerLen(n) + n);
  const po = writeHeader(out, OP_BINARY, n, true);
  const mk = po - 4;
  const m = [out[mk], out[mk + 1], out[mk + 2], out[mk + 3]];
  let o = po;
  const pl = prefix.length;
  for (let i = 0; i < pl; i++) out[o++] = prefix[i] ^ m[i & 3];
  out[o++] = (0xa0 | sl) ^ m[pl & 3];
  for (let i = 0; i < sl; i++) out[o++] = s.charCodeAt(i) ^ m[(pl + 1 + i) & 3];
  return out;
}

/**
 * Streaming parser for server → client frames. Calls
 *   onMessage(buf, start, end, isBinary)   for complete data messages
 *   onControl(opcode, payloadBuffer)       for ping/pong/close
 *   onError(err)                           for protocol violations
 */
export class FrameParser {
  constructor(onMessage, onControl, onError) {
    this.onMessage = onMessage;
    this.onControl = onControl;
    this.onError = onError;
    this.chunks = null; // pending partial data
    this.chunksLen = 0;
    this.need = 0; // bytes needed before parsing can continue
    this.fragOpcode = -1;
    this.frags = null;
    this.fragsLen = 0;
    this.failed = false;
  }

  push(chunk) {
    if (this.failed) return;
    let buf;
    if (this.chunks !== null) {
      this.chunks.push(chunk);
      this.chunksLen += chunk.length;
      if (this.chunksLen < this.need) return;
      buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.chunksLen);
      this.chunks = null;
      this.chunksLen = 0;
    } else {
      buf = chunk;
    }
    const len = buf.length;
    let p = 0;
    while (p < len) {
      const avail = len - p;
      if (avail < 2) { this._keep(buf, p, 2); return; }
      const b0 = buf[p];
      const b1 = buf[p + 1];
      let plen = b1 & 0x7f;
      let hdr = 2;
      if (plen === 126) {
        if (avail < 4) { this._keep(buf, p, 4); return; }
        plen = buf.readUInt16BE(p + 2);
        hdr = 4;
      } else if (plen === 127) {
        if (avail < 10) { this._keep(buf, p, 10); return; }
        const hi = buf.readUInt32BE(p + 2);
        const lo = buf.readUInt32BE(p + 6);
        plen = hi * 0x100000000 + lo;
        hdr = 10;
        if (plen > MAX_MESSAGE) return this._fail('frame too large: ' + plen);
      }
      const masked = (b1 & 0x80) !== 0;
      if (masked) hdr += 4;
      const total = hdr + plen;
      if (avail < total) { this._keep(buf, p, total); return; }
      if (b0 & 0x70) return this._fail('RSV bits set without extension');
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      let pbuf = buf, ps = p + hdr, pe = p + total;
      if (masked) { // servers must not mask, but unmask anyway
        const mk = p + hdr - 4;
        const copy = Buffer.allocUnsafe(plen);
        for (let i = 0; i < plen; i++) copy[i] = buf[ps + i] ^ buf[mk + (i & 3)];
        pbuf = copy; ps = 0; pe = plen;
      }
      p += total;
      if (opcode >= 0x8) {
        if (!fin || plen > 125) return this._fail('invalid control frame');
        if (opcode !== OP_CLOSE && opcode !== OP_PING && opcode !== OP_PONG) return this._fail('unknown control opcode ' + opcode);
        this.onControl(opcode, pbuf.subarray(ps, pe));
        continue;
      }
      if (opcode === OP_CONT) {
        if (this.fragOpcode < 0) return this._fail('continuation without start');
        this.frags.push(Buffer.from(pbuf.subarray(ps, pe)));
        this.fragsLen += plen;
        if (this.fragsLen > MAX_MESSAGE) return this._fail('message too large');
        if (fin) {
          const msg = Buffer.concat(this.frags, this.fragsLen);
          const bin = this.fragOpcode === OP_BINARY;
          this.fragOpcode = -1; this.frags = null; this.fragsLen = 0;
          this.onMessage(msg, 0, msg.length, bin);
        }
        continue;
      }
      if (opcode !== OP_TEXT && opcode !== OP_BINARY) return this._fail('unknown opcode ' + opcode);
      if (this.fragOpcode >= 0) return this._fail('new message inside fragmented message');
      if (fin) {
        this.onMessage(pbuf, ps, pe, opcode === OP_BINARY);
      } else {
        this.fragOpcode = opcode;
        this.frags = [Buffer.from(pbuf.subarray(ps, pe))];
        this.fragsLen = plen;
      }
    }
  }

  _keep(buf, p, need) {
    // Copy the tail so we don't pin a large chunk; tails are usually small.
    const rest = buf.length - p;
    const tail = rest > 4096 ? buf.subarray(p) : Buffer.from(buf.subarray(p));
    this.chunks = [tail];
    this.chunksLen = rest;
    this.need = need;
  }

  _fail(msg) {
    this.failed = true;
    this.chunks = null;
    this.onError(new Error('ws protocol: ' + msg));
  }
}

/**
 * A WebSocket client connection.
 * Callbacks (assign before/after connect):
 *   onmessage(buf, start, end, isBinary)  buf is only valid during the call
 *   onclose(code, reason, error)           once, when the TCP socket closes
 *   onpong(payload)
 */
export class WsConn {
  constructor() {
    this.socket = null;
    this.state = 'init'; // init | handshake | open | closing | closed
    this._onmessage = null;
    this._early = null; // messages that arrived before onmessage was set
    this.onclose = null;
    this.onpong = null;
    this.closeCode = 1006;
    this.closeReason = '';
    this.error = null;
    this._hs = null;
    this._key = '';
    this._sentClose = false;
    this.parser = new FrameParser(
      (b, s, e, bin) => {
        if (this._onmessage !== null) this._onmessage(b, s, e, bin);
        else (this._early ??= []).push([Buffer.from(b.subarray(s, e)), bin]);
      },
      (op, payload) => this._control(op, payload),
      (err) => this._protoError(err),
    );
  }

  /**
   * Open the TCP connection and perform the upgrade handshake.
   * opts: { host, port, path, localAddress, timeoutMs, headers }
   * Resolves when the 101 response is validated; rejects with an Error whose
   * `code` is e.g. ECONNREFUSED, ETIMEDOUT, HTTP_404, BAD_ACCEPT.
   */
  connect(opts) {
    return new Promise((resolve, reject) => {
      const { host, port, path = '/', localAddress, timeoutMs = 10000 } = opts;
      this._key = crypto.randomBytes(16).toString('base64');
      const sockOpts = { host, port, noDelay: true };
      if (localAddress) sockOpts.localAddress = localAddress;
      const sock = net.connect(sockOpts);
      this.socket = sock;
      this.state = 'handshake';
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.error = err;
        sock.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        const e = new Error('connect/handshake timeout'); e.code = 'ETIMEDOUT'; fail(e);
      }, timeoutMs);
      sock.on('connect', () => {
        let req = `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this._key}\r\nSec-WebSocket-Version: 13\r\n`;
        if (opts.headers) for (const [k, v] of Object.entries(opts.headers)) req += `${k}: ${v}\r\n`;
        sock.write(req + '\r\n');
      });
      sock.on('error', (err) => {
        if (!settled) return fail(err);
        this.error = err;
      });
      sock.on('close', () => {
        if (!settled) {
          const e = new Error('socket closed during handshake'); e.code = 'ECLOSED'; fail(e);
          this.state = 'closed';
          return;
        }
        const wasOpen = this.state !== 'closed';
        this.state = 'closed';
        if (wasOpen && this.onclose) this.onclose(this.closeCode, this.closeReason, this.error);
      });
      this._hs = { chunks: [], len: 0, resolve: () => { settled = true; clearTimeout(timer); resolve(this); }, fail };
      sock.on('data', (chunk) => this._onData(chunk));
    });
  }

  get onmessage() { return this._onmessage; }
  set onmessage(fn) {
    this._onmessage = fn;
    if (fn !== null && this._early !== null) {
      const q = this._early;
      this._early = null;
      for (const [b, bin] of q) fn(b, 0, b.length, bin);
    }
  }

  _onData(chunk) {
    if (this.state === 'open' || this.state === 'closing') { this.parser.push(chunk); return; }
    if (this.state !== 'handshake') return;
    const hs = this._hs;
    hs.chunks.push(chunk);
    hs.len += chunk.length;
    const all = hs.chunks.length === 1 ? hs.chunks[0] : Buffer.concat(hs.chunks, hs.len);
    hs.chunks = [all];
    const end = all.indexOf('\r\n\r\n', 0, 'latin1');
    if (end < 0) {
      if (hs.len > MAX_HANDSHAKE) { const e = new Error('handshake response too large'); e.code = 'BAD_HANDSHAKE'; hs.fail(e); }
      return;
    }
    const head = all.toString('latin1', 0, end);
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]);
    if (!m || m[1] !== '101') {
      const e = new Error('unexpected handshake response: ' + lines[0]);
      e.code = m ? 'HTTP_' + m[1] : 'BAD_HANDSHAKE';
      hs.fail(e);
      return;
    }
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(':');
      if (c > 0) headers[lines[i].slice(0, c).trim().toLowerCase()] = lines[i].slice(c + 1).trim();
    }
    const expect = crypto.createHash('sha1').update(this._key + GUID).digest('base64');
    if ((headers['upgrade'] || '').toLowerCase() !== 'websocket' ||
        !(headers['connection'] || '').toLowerCase().split(/\s*,\s*/).includes('upgrade')) {
      const e = new Error('missing Upgrade/Connection headers'); e.code = 'BAD_HANDSHAKE'; hs.fail(e); return;
    }
    if (headers['sec-websocket-accept'] !== expect) {
      const e = new Error('bad Sec-WebSocket-Accept'); e.code = 'BAD_ACCEPT'; hs.fail(e); return;
    }
    if (headers['sec-websocket-extensions']) {
      const e = new Error('server selected an extension we did not offer'); e.code = 'BAD_HANDSHAKE'; hs.fail(e); return;
    }
    this._hs = null;
    this.state = 'open';
    hs.resolve();
    if (all.length > end + 4) this.parser.push(all.subarray(end + 4));
  }

  _control(op, payload) {
    if (op === OP_PING) {
      if (this.state === 'open') this.socket.write(encodeFrame(OP_PONG, payload));
    } else if (op === OP_PONG) {
      if (this.onpong) this.onpong(payload);
    } else if (op === OP_CLOSE) {
      let code = 1005, reason = '';
      if (payload.length >= 2) { code = payload.readUInt16BE(0); reason = payload.toString('utf8', 2); }
      this.closeCode = code; this.closeReason = reason;
      if (!this._sentClose && this.state === 'open') {
        this._sentClose = true;
        const body = Buffer.alloc(payload.length >= 2 ? 2 : 0);
        if (body.length) body.writeUInt16BE(code, 0);
        this.socket.write(encodeFrame(OP_CLOSE, body));
      }
      this.state = 'closing';
      this.socket.end();
    }
  }

  _protoError(err) {
    this.error = err;
    this.closeCode = 1002;
    this.socket.destroy();
  }

  get isOpen() { return this.state === 'open'; }

  /** Write an already-encoded (masked) frame. */
  writeRaw(frame) {
    if (this.state !== 'open') return false;
    return this.socket.write(frame);
  }

  sendBinary(payload) { return this.writeRaw(encodeFrame(OP_BINARY, payload)); }
  sendText(str) { return this.writeRaw(encodeFrame(OP_TEXT, Buffer.from(str, 'utf8'))); }
  ping(payload = Buffer.alloc(0)) { return this.writeRaw(encodeFrame(OP_PING, payload)); }

  /** Start a clean close; the socket is destroyed if the server doesn't finish within timeoutMs. */
  close(code = 1000, reason = '', timeoutMs = 2000) {
    if (this.state === 'open') {
      this._sentClose = true;
      const r = Buffer.from(reason, 'utf8');
      const body = Buffer.allocUnsafe(2 + r.length);
      body.writeUInt16BE(code, 0);
      r.copy(body, 2);
      this.socket.write(encodeFrame(OP_CLOSE, body));
      this.state = 'closing';
      const t = setTimeout(() => this.socket.destroy(), timeoutMs);
      t.unref();
      this.socket.once('close', () => clearTimeout(t));
    } else if (this.state !== 'closed' && this.socket) {
      this.socket.destroy();
    }
  }

  destroy() { if (this.socket) this.socket.destroy(); }
}

/** Parse ws://host:port/path into connection options. */
export function parseWsUrl(url) {
  const u = new URL(url);
  if (u.protocol !== 'ws:') throw new Error('only ws:// URLs are supported: ' + url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { host, port: Number(u.port || 80), path: (u.pathname || '/') + (u.search || '') };
}

/** True if host is an IPv4 loopback address (127.0.0.0/8) or "localhost". */
export function isLoopback(host) {
  return host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
