/**
 * Frame encoding and decoding. Binary WebSocket messages are MessagePack maps,
 * text messages are JSON objects. Callers see only `encodeFrame` and
 * `decodeFrame`; the MessagePack implementation behind them (msgpackr here) is
 * an internal choice.
 */
import { Packr, Unpackr } from 'msgpackr';
import { NpcdError } from '../errors.js';
import type { ServerFrame } from './types.js';

export type WireFormat = 'msgpack' | 'json';

// Plain MessagePack only: msgpackr's "records" extension would make frames
// unreadable to every other MessagePack library.
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export function encodeMsgpack(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function encodeFrame(frame: ServerFrame, format: WireFormat): Uint8Array | string {
  return format === 'msgpack' ? packr.pack(frame) : JSON.stringify(frame);
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes one client message. Throws ERR_PROTOCOL_MALFORMED with the reason
 * when the bytes are not one complete MessagePack value / JSON document.
 */
export function decodeFrame(data: ArrayBuffer | Uint8Array, isBinary: boolean): unknown {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (isBinary) {
    if (bytes.length === 0) throw new NpcdError('ERR_PROTOCOL_MALFORMED', 'empty MessagePack message');
    try {
      return unpackr.unpack(bytes);
    } catch (cause) {
      // A stack overflow is the decoder recursing into deeply nested input;
      // other RangeErrors (reading past the end of a sized value) are truncation.
      const message = (cause as Error).message;
      const reason = /call stack/i.test(message) ? 'nesting too deep' : cause instanceof RangeError ? `truncated input (${message})` : message;
      throw new NpcdError('ERR_PROTOCOL_MALFORMED', `invalid MessagePack: ${reason}`, { cause });
    }
  }
  return decodeJson(bytes);
}

export function decodeJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = textDecoder.decode(bytes);
  } catch (cause) {
    throw new NpcdError('ERR_PROTOCOL_MALFORMED', 'invalid UTF-8 in JSON text', { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new NpcdError('ERR_PROTOCOL_MALFORMED', `invalid JSON: ${(cause as Error).message}`, { cause });
  }
}
