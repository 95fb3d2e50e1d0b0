/**
 * Both MessagePack implementations, for tests that must pass against each:
 * msgpackr (the fallback) and the native module. The native one must load
 * here: `npm ci` builds it, and a missing build fails these tests.
 */
import { DEFAULT_DECODE_LIMITS, type DecodeLimits, type FrameCodec, MsgpackrCodec, NativeCodec } from '../../src/protocol/codec.js';
import { loadNative } from '../../src/native/index.js';

export function codecs(limits: DecodeLimits = { ...DEFAULT_DECODE_LIMITS, maxDepth: 128, maxInputBytes: 1 << 20, maxStrBytes: 1 << 20 }): FrameCodec[] {
  return [new MsgpackrCodec(), new NativeCodec(loadNative(), limits)];
}
