/**
 * Frame encoding and decoding. Binary WebSocket messages are MessagePack maps,
 * text messages are JSON objects. A `FrameCodec` does both for one
 * MessagePack implementation: the native module (native/, Rust) or msgpackr,
 * which stays as the fallback and as the baseline of bench/native/.
 *
 * The per-token path is `encodeRun`: it encodes a run of stream frames into
 * one reusable buffer in a single call, so sending costs no allocation per
 * frame and, for clients that accept batches, one WebSocket message per run.
 */
import { Packr, Unpackr } from 'msgpackr';
import { NpcdError } from '../errors.js';
import { type DecodeTape, describeLoadError, type FrameTape, loadNative, type NativeModule } from '../native/index.js';
import type { ServerFrame } from './types.js';

export type WireFormat = 'msgpack' | 'json';
export type MsgpackImplementation = 'native' | 'msgpackr';

/** Limits on decoding a client's MessagePack (enforced by the native codec). */
export interface DecodeLimits {
  maxInputBytes: number;
  maxDepth: number;
  maxStrBytes: number;
  maxContainerLen: number;
  maxTotalItems: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = Object.freeze({
  maxInputBytes: 4 * 16 * 1024,
  maxDepth: 64,
  maxStrBytes: 4 * 16 * 1024,
  maxContainerLen: 4096,
  maxTotalItems: 65_536,
});

/** Frame kinds of a tape; the numbers are native/src/bind_msgpack.rs's `kind`. */
const enum TapeKind {
  Token = 1,
  Start = 2,
  Done = 3,
  Error = 4,
  Welcome = 5,
  Pong = 6,
}
/** Ops of a decode tape; the numbers are native/src/bind_msgpack.rs's `op`. */
const enum DecodeOp {
  Nil = 0,
  False = 1,
  True = 2,
  Num = 3,
  Str = 4,
  Array = 5,
  Map = 6,
  Undefined = 7,
  KnownKey = 8,
}
/** Values a decode tape holds; bigger messages take the full decoder. */
const DECODE_TAPE_ITEMS = 4096;

/** A tape string length meaning "field absent". */
const ABSENT = 0xffff_ffff;

/** Size of the buffer a run of frames is encoded into; a larger frame gets its own. */
const RUN_BYTES = 64 * 1024;
/** Most frames encoded per run. */
const RUN_FRAMES = 256;

const textDecoder = new TextDecoder('utf-8', { fatal: true });

export abstract class FrameCodec {
  abstract readonly implementation: MsgpackImplementation;
  /** After `encodeRun`: the encoded frames back to back (valid until the next call). */
  bytes: Uint8Array = Buffer.allocUnsafe(RUN_BYTES);
  /** After `encodeRun`: `ends[i]` is the end offset of the i-th frame in `bytes`. */
  readonly ends = new Uint32Array(RUN_FRAMES);
  protected readonly scratch = this.bytes;

  /** Any value as MessagePack (a new buffer). */
  abstract encodeMsgpack(value: unknown): Uint8Array;
  /** Decodes one MessagePack value; errors are thrown as they come from the implementation. */
  protected abstract decodeMsgpack(bytes: Uint8Array | ArrayBuffer): unknown;
  /** Encodes frames[from..] into `scratch`/`ends`; returns how many fit (0 when the first alone does not). */
  protected abstract encodeInto(frames: readonly ServerFrame[], from: number): number;
  /** Turns an implementation's decode error into the reason shown to the client. */
  protected abstract describeDecodeError(cause: unknown): string;

  encodeFrame(frame: ServerFrame, format: WireFormat): Uint8Array | string {
    return format === 'msgpack' ? this.encodeMsgpack(frame) : JSON.stringify(frame);
  }

  /**
   * Encodes a run of frames starting at `frames[from]` (at least one when
   * any remain) into `bytes`, with end offsets in `ends`; returns the count.
   */
  encodeRun(frames: readonly ServerFrame[], from: number): number {
    this.bytes = this.scratch;
    if (from >= frames.length) return 0;
    const n = this.encodeInto(frames, from);
    if (n > 0) return n;
    // One frame larger than the run buffer: it gets a buffer of its own.
    const big = this.encodeMsgpack(frames[from]);
    this.bytes = big;
    this.ends[0] = big.length;
    return 1;
  }

  /**
   * Decodes one client message. Throws ERR_PROTOCOL_MALFORMED with the reason
   * when the bytes are not one complete MessagePack value / JSON document.
   */
  decodeFrame(data: ArrayBuffer | Uint8Array, isBinary: boolean): unknown {
    if (!isBinary) return decodeJson(data instanceof Uint8Array ? data : new Uint8Array(data));
    if (data.byteLength === 0) throw new NpcdError('ERR_PROTOCOL_MALFORMED', 'empty MessagePack message');
    try {
      return this.decodeMsgpack(data);
    } catch (cause) {
      throw new NpcdError('ERR_PROTOCOL_MALFORMED', `invalid MessagePack: ${this.describeDecodeError(cause)}`, { cause });
    }
  }
}

/** The pure-JS codec: msgpackr, plain MessagePack only. */
export class MsgpackrCodec extends FrameCodec {
  readonly implementation = 'msgpackr';
  // msgpackr's "records" extension would make frames unreadable to every
  // other MessagePack library.
  private readonly packr = new Packr({ useRecords: false, variableMapSize: true });
  private readonly unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

  encodeMsgpack(value: unknown): Uint8Array {
    return this.packr.pack(value);
  }

  protected decodeMsgpack(bytes: Uint8Array | ArrayBuffer): unknown {
    return this.unpackr.unpack(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  }

  protected encodeInto(frames: readonly ServerFrame[], from: number): number {
    const out = this.scratch;
    const ends = this.ends;
    let at = 0;
    let n = 0;
    for (let i = from; i < frames.length && n < ends.length; i++) {
      const packed = this.packr.pack(frames[i]);
      if (at + packed.length > out.length) break;
      out.set(packed, at);
      at += packed.length;
      ends[n++] = at;
    }
    return n;
  }

  protected describeDecodeError(cause: unknown): string {
    // A stack overflow is the decoder recursing into deeply nested input;
    // other RangeErrors (reading past the end of a sized value) are truncation.
    const message = (cause as Error).message;
    return /call stack/i.test(message) ? 'nesting too deep' : cause instanceof RangeError ? `truncated input (${message})` : message;
  }
}

/** The native codec (native/src/bind_msgpack.rs): bounded, precise decoding and batched encoding. */
export class NativeCodec extends FrameCodec {
  readonly implementation = 'native';

  constructor(
    private readonly native: NativeModule,
    readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  ) {
    super();
    this.tape = native.createFrameTape(this.kinds, this.nums, this.lens, this.scratch, this.ends);
    this.decodeTape = native.createDecodeTape(this.ops, this.dnums);
    this.knownKeys = [...native.knownKeys];
  }

  encodeMsgpack(value: unknown): Uint8Array {
    return this.native.encode(value);
  }

  protected decodeMsgpack(bytes: Uint8Array | ArrayBuffer): unknown {
    // Limits are set once per thread rather than read from an object on
    // every call; codecs with different limits (tests) take turns.
    if (NativeCodec.applied !== this.limits) {
      this.native.setDecodeLimits(this.limits);
      NativeCodec.applied = this.limits;
    }
    const text = this.native.decodeToTape(this.decodeTape as DecodeTape, bytes);
    // Values the tape does not cover (BigInt, bin, ext, timestamps) are rare
    // in client frames; the full decoder builds them.
    if (text === undefined) return this.native.decode(bytes);
    this.text = text;
    this.oi = 0;
    this.ni = 0;
    this.ti = 0;
    return this.build();
  }

  /**
   * Decode tape (native/src/bind_msgpack.rs): building objects through N-API
   * costs more than msgpackr's whole decode, so the native side validates
   * and lays the value out flat — an op per value, numbers and string
   * lengths, all strings joined — and this builds it.
   */
  private readonly ops = new Uint8Array(DECODE_TAPE_ITEMS);
  private readonly dnums = new Float64Array(DECODE_TAPE_ITEMS);
  private readonly decodeTape: unknown;
  /** Map keys the tape names by index: interned once, no slicing per frame. */
  private readonly knownKeys: readonly string[];
  private text = '';
  private oi = 0;
  private ni = 0;
  private ti = 0;

  private build(): unknown {
    switch (this.ops[this.oi++]) {
      case DecodeOp.Nil:
        return null;
      case DecodeOp.False:
        return false;
      case DecodeOp.True:
        return true;
      case DecodeOp.Num:
        return this.dnums[this.ni++];
      case DecodeOp.Str: {
        const end = this.ti + this.dnums[this.ni++]!;
        const s = this.text.slice(this.ti, end);
        this.ti = end;
        return s;
      }
      case DecodeOp.Array: {
        const n = this.dnums[this.ni++]!;
        const a = new Array<unknown>(n);
        for (let i = 0; i < n; i++) a[i] = this.build();
        return a;
      }
      case DecodeOp.Map: {
        const n = this.dnums[this.ni++]!;
        const o: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) {
          // Keys that are not strings become their string form, as msgpackr does.
          const key = String(this.build());
          const value = this.build();
          // A plain assignment of "__proto__" would change the prototype.
          if (key === '__proto__') Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
          else o[key] = value;
        }
        return o;
      }
      case DecodeOp.KnownKey:
        return this.knownKeys[this.dnums[this.ni++]!];
      default:
        return undefined;
    }
  }

  private static applied: DecodeLimits | undefined;

  /**
   * Frame tape (native/src/bind_msgpack.rs): reading properties through
   * N-API costs more than encoding, so the fields are laid out flat here —
   * a kind per frame, numbers, and every string joined into one with its
   * length — and one native call encodes the run.
   */
  private readonly kinds = new Uint8Array(RUN_FRAMES);
  private readonly nums = new Float64Array(RUN_FRAMES * 4);
  private readonly lens = new Uint32Array(RUN_FRAMES * 4);
  private readonly tape: unknown;

  protected encodeInto(frames: readonly ServerFrame[], from: number): number {
    const { kinds, nums, lens } = this;
    let text = '';
    let n = 0;
    let ni = 0;
    let li = 0;
    for (let i = from; i < frames.length && n < RUN_FRAMES; i++, n++) {
      const f = frames[i]!;
      switch (f.t) {
        case 'token':
          kinds[n] = TapeKind.Token;
          nums[ni++] = f.seq;
          lens[li++] = f.id.length;
          lens[li++] = f.text.length;
          text += f.id + f.text;
          break;
        case 'start':
          kinds[n] = TapeKind.Start;
          nums[ni++] = f.seq;
          lens[li++] = f.id.length;
          lens[li++] = f.character.length;
          lens[li++] = f.state.length;
          text += f.id + f.character + f.state;
          break;
        case 'done':
          kinds[n] = TapeKind.Done;
          nums[ni++] = f.seq;
          nums[ni++] = f.usage.prompt_tokens;
          nums[ni++] = f.usage.completion_tokens;
          lens[li++] = f.id.length;
          lens[li++] = f.text.length;
          lens[li++] = f.state.length;
          lens[li++] = f.finish.length;
          text += f.id + f.text + f.state + f.finish;
          break;
        case 'error':
          kinds[n] = TapeKind.Error;
          nums[ni++] = f.seq ?? Number.NaN;
          lens[li++] = f.id === undefined ? ABSENT : f.id.length;
          lens[li++] = f.code.length;
          lens[li++] = f.message.length;
          text += (f.id ?? '') + f.code + f.message;
          break;
        case 'welcome':
          kinds[n] = TapeKind.Welcome;
          nums[ni++] = f.seq;
          nums[ni++] = f.heartbeat_ms;
          nums[ni++] = f.resumed ? 1 : 0;
          nums[ni++] = f.batch === undefined ? Number.NaN : f.batch ? 1 : 0;
          lens[li++] = f.session.length;
          text += f.session;
          break;
        case 'pong':
          kinds[n] = TapeKind.Pong;
          nums[ni++] = f.ts;
          break;
      }
    }
    if (n === 0) return 0;
    return this.native.encodeFrameTape(this.tape as FrameTape, n, text);
  }

  /** Frames go through the tape too (a copy: the run buffer is reused). */
  override encodeFrame(frame: ServerFrame, format: WireFormat): Uint8Array | string {
    if (format === 'json') return JSON.stringify(frame);
    const n = this.encodeRun([frame], 0);
    // From Node's Buffer pool: a plain copy of more than 64 bytes would get
    // its own off-heap allocation, costing more than the encoding.
    const out = Buffer.allocUnsafe(this.ends[n - 1]!);
    out.set(this.bytes.subarray(0, out.length));
    return out;
  }

  protected describeDecodeError(cause: unknown): string {
    // The native message names the reason and the byte offset.
    return (cause as Error).message;
  }
}

/**
 * The codec to use: native unless `native` is false or the native module
 * does not load, in which case `fallbackReason` says why msgpackr is used.
 */
export function createCodec(options: { native: boolean; limits?: DecodeLimits }): { codec: FrameCodec; fallbackReason?: string } {
  if (!options.native) return { codec: new MsgpackrCodec(), fallbackReason: '--no-native' };
  try {
    return { codec: new NativeCodec(loadNative(), options.limits) };
  } catch (err) {
    return { codec: new MsgpackrCodec(), fallbackReason: describeLoadError(err) };
  }
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
