//! JS glue for `msgpack`: `encode`, `decode`, `decodeStream`,
//! `setDecodeLimits` and `encodeFrames` (the server's per-token path).
//!
//! Crossing into native code costs more than msgpackr spends on a small
//! frame, so the hot path is shaped around that: `encodeFrames` encodes a
//! whole run of frames per call into a caller-owned buffer (no allocation per
//! frame), reads the known frame types field by field with property keys
//! created once per environment, and `decode` reuses one tape allocation.
use std::ffi::CStr;
use std::ptr;

use crate::msgpack::decode::{decode_into, decode_stream_into, DecodeError, Item, Limits};
use crate::msgpack::encode;
use crate::napi::{callback, napi_call, Env, JsError, Prop, Result};
use crate::sys::{self, napi_callback_info, napi_env, napi_ref, napi_value, property_attributes, valuetype};

/// Deepest nesting `encode` follows; deeper input is most likely a cycle.
const MAX_ENCODE_DEPTH: u32 = 512;
/// Upper bound for `maxDepth`: decoded values are built recursively.
const MAX_DECODE_DEPTH: u64 = 1000;

/// Property names used by the frame writer and cached as JS strings.
/// The index of a name here is its `Key`.
/// Also exported as `knownKeys`: a decode tape names these keys by index,
/// so JS uses its own (interned) strings instead of slicing new ones.
const KEYS: [&str; 20] = [
    "t", "seq", "id", "text", "character", "state", "usage", "finish", "code", "message", "session", "heartbeat_ms", "resumed", "ts",
    "prompt_tokens", "completion_tokens", "batch", "v", "resume", "token",
];
mod key {
    pub const T: usize = 0;
    pub const SEQ: usize = 1;
    pub const ID: usize = 2;
    pub const TEXT: usize = 3;
    pub const CHARACTER: usize = 4;
    pub const STATE: usize = 5;
    pub const USAGE: usize = 6;
    pub const FINISH: usize = 7;
    pub const CODE: usize = 8;
    pub const MESSAGE: usize = 9;
    pub const SESSION: usize = 10;
    pub const HEARTBEAT_MS: usize = 11;
    pub const RESUMED: usize = 12;
    pub const TS: usize = 13;
    pub const PROMPT_TOKENS: usize = 14;
    pub const COMPLETION_TOKENS: usize = 15;
    pub const BATCH: usize = 16;
}

/// Per-environment state: cached key strings, reusable buffers, limits.
struct State {
    /// A JS array holding the KEYS strings. Node 20's N-API (version 9)
    /// cannot reference strings directly, so they are kept in an array.
    keys: napi_ref,
    /// Pre-encoded MessagePack of each key (fixstr header + bytes).
    packed_keys: Vec<Vec<u8>>,
    out: Vec<u8>,
    /// UTF-16 code units of a frame tape's joined strings.
    units: Vec<u16>,
    /// Open containers while laying out a decode tape.
    stack: Vec<(u64, bool)>,
    tape: Vec<Item<'static>>,
    limits: Limits,
}

fn state(env: Env) -> Result<&'static mut State> {
    env.state(|env| {
        let mut holder = ptr::null_mut();
        napi_call!(env.0, napi_create_array_with_length(env.0, KEYS.len(), &mut holder))?;
        for (i, name) in KEYS.iter().enumerate() {
            let s = env.string(name)?;
            napi_call!(env.0, napi_set_element(env.0, holder, i as u32, s))?;
        }
        let mut keys = ptr::null_mut();
        napi_call!(env.0, napi_create_reference(env.0, holder, 1, &mut keys))?;
        let packed_keys = KEYS
            .iter()
            .map(|k| {
                let mut v = Vec::new();
                encode::write_str(&mut v, k);
                v
            })
            .collect();
        Ok(State { keys, packed_keys, out: Vec::with_capacity(64 * 1024), units: Vec::with_capacity(16 * 1024), stack: Vec::with_capacity(64), tape: Vec::with_capacity(256), limits: Limits::default() })
    })
}

/// Key strings fetched once per call, on first use.
struct Keys {
    holder_ref: napi_ref,
    holder: napi_value,
    values: [napi_value; KEYS.len()],
}

impl Keys {
    fn new(holder_ref: napi_ref) -> Self {
        Keys { holder_ref, holder: ptr::null_mut(), values: [ptr::null_mut(); KEYS.len()] }
    }

    #[inline]
    fn get(&mut self, env: Env, k: usize) -> Result<napi_value> {
        if self.values[k].is_null() {
            if self.holder.is_null() {
                napi_call!(env.0, napi_get_reference_value(env.0, self.holder_ref, &mut self.holder))?;
            }
            napi_call!(env.0, napi_get_element(env.0, self.holder, k as u32, &mut self.values[k]))?;
        }
        Ok(self.values[k])
    }
}

pub fn register(env: Env, exports: napi_value) -> Result<()> {
    env.export_fn(exports, c"encode", Some(js_encode))?;
    env.export_fn(exports, c"decode", Some(js_decode))?;
    env.export_fn(exports, c"decodeStream", Some(js_decode_stream))?;
    env.export_fn(exports, c"setDecodeLimits", Some(js_set_decode_limits))?;
    env.export_fn(exports, c"createFrameTape", Some(js_create_frame_tape))?;
    env.export_fn(exports, c"encodeFrameTape", Some(js_encode_frame_tape))?;
    env.export_fn(exports, c"createDecodeTape", Some(js_create_decode_tape))?;
    env.export_fn(exports, c"decodeToTape", Some(js_decode_to_tape))?;
    let mut keys = ptr::null_mut();
    napi_call!(env.0, napi_create_array_with_length(env.0, KEYS.len(), &mut keys))?;
    for (i, k) in KEYS.iter().enumerate() {
        let v = env.string(k)?;
        napi_call!(env.0, napi_set_element(env.0, keys, i as u32, v))?;
    }
    env.set_named(exports, c"knownKeys", keys)?;
    let abi = env.uint32(1)?;
    env.set_named(exports, c"abiVersion", abi)?;
    Ok(())
}

// ---- Encoding ---------------------------------------------------------------

fn encode_error(message: impl Into<String>) -> JsError {
    JsError::new("ERR_NATIVE_MSGPACK_ENCODE", message)
}

struct Writer<'s> {
    env: Env,
    out: &'s mut Vec<u8>,
}

impl Writer<'_> {
    /// A JS string as a MessagePack str, read straight into the output: a
    /// one-byte fixstr header is reserved and widened afterwards if needed.
    #[inline]
    fn string(&mut self, v: napi_value) -> Result<()> {
        let at = self.out.len();
        self.out.push(0);
        let n = self.env.append_string(v, self.out, "string")?;
        if n < 32 {
            self.out[at] = 0xa0 | n as u8;
        } else {
            let len = u32::try_from(n).map_err(|_| encode_error("string longer than 4 GiB"))?;
            let mut header = [0u8; 5];
            let mut tmp = Vec::with_capacity(5);
            encode::write_str_header(&mut tmp, len);
            header[..tmp.len()].copy_from_slice(&tmp);
            self.out.splice(at..at + 1, header[..tmp.len()].iter().copied());
        }
        Ok(())
    }

    fn value(&mut self, v: napi_value, depth: u32) -> Result<()> {
        let env = self.env;
        match env.type_of(v)? {
            valuetype::napi_string => self.string(v),
            valuetype::napi_number => {
                encode::write_number(self.out, env.get_f64(v, "value")?);
                Ok(())
            }
            valuetype::napi_boolean => {
                encode::write_bool(self.out, env.get_bool(v, "value")?);
                Ok(())
            }
            valuetype::napi_null => {
                encode::write_nil(self.out);
                Ok(())
            }
            // msgpackr writes functions as it writes undefined.
            valuetype::napi_undefined | valuetype::napi_function => {
                encode::write_undefined(self.out);
                Ok(())
            }
            valuetype::napi_bigint => self.bigint(v),
            valuetype::napi_object => self.object(v, depth),
            valuetype::napi_symbol => Err(encode_error("a symbol cannot be encoded as MessagePack")),
            _ => Err(encode_error("an external value cannot be encoded as MessagePack")),
        }
    }

    /// BigInt as int64 when it fits, else uint64, as msgpackr writes it.
    fn bigint(&mut self, v: napi_value) -> Result<()> {
        let env = self.env;
        let mut i = 0i64;
        let mut lossless = false;
        napi_call!(env.0, napi_get_value_bigint_int64(env.0, v, &mut i, &mut lossless))?;
        if lossless {
            encode::write_i64(self.out, i);
            return Ok(());
        }
        let mut u = 0u64;
        napi_call!(env.0, napi_get_value_bigint_uint64(env.0, v, &mut u, &mut lossless))?;
        if lossless {
            encode::write_u64(self.out, u);
            return Ok(());
        }
        Err(encode_error("a BigInt outside the 64-bit range cannot be encoded"))
    }

    fn object(&mut self, v: napi_value, depth: u32) -> Result<()> {
        let env = self.env;
        if depth >= MAX_ENCODE_DEPTH {
            return Err(encode_error(format!("value nested deeper than {MAX_ENCODE_DEPTH} levels (a cycle?)")));
        }
        let mut is = false;
        napi_call!(env.0, napi_is_array(env.0, v, &mut is))?;
        if is {
            let mut len = 0u32;
            napi_call!(env.0, napi_get_array_length(env.0, v, &mut len))?;
            encode::write_array_header(self.out, len);
            for i in 0..len {
                let mut item = ptr::null_mut();
                napi_call!(env.0, napi_get_element(env.0, v, i, &mut item))?;
                self.value(item, depth + 1)?;
            }
            return Ok(());
        }
        napi_call!(env.0, napi_is_typedarray(env.0, v, &mut is))?;
        let mut binary = is;
        if !binary {
            napi_call!(env.0, napi_is_arraybuffer(env.0, v, &mut is))?;
            binary = is;
        }
        if !binary {
            napi_call!(env.0, napi_is_dataview(env.0, v, &mut is))?;
            binary = is;
        }
        if binary {
            let bytes = env.get_bytes(v, "value")?;
            if bytes.len() > encode::MAX_LEN {
                return Err(encode_error("binary value longer than 4 GiB"));
            }
            encode::write_bin(self.out, bytes);
            return Ok(());
        }
        napi_call!(env.0, napi_is_date(env.0, v, &mut is))?;
        if is {
            let mut ms = 0.0;
            napi_call!(env.0, napi_get_date_value(env.0, v, &mut ms))?;
            encode::write_date(self.out, ms);
            return Ok(());
        }
        // A plain object (or any other object): its own enumerable string
        // keys, in property order, as msgpackr's for…in over own keys gives.
        let mut names = ptr::null_mut();
        napi_call!(
            env.0,
            napi_get_all_property_names(
                env.0,
                v,
                sys::napi_key_own_only,
                sys::napi_key_enumerable | sys::napi_key_skip_symbols,
                sys::napi_key_numbers_to_strings,
                &mut names,
            )
        )?;
        let mut count = 0u32;
        napi_call!(env.0, napi_get_array_length(env.0, names, &mut count))?;
        encode::write_map_header(self.out, count);
        for i in 0..count {
            let mut k = ptr::null_mut();
            napi_call!(env.0, napi_get_element(env.0, names, i, &mut k))?;
            self.string(k)?;
            let mut item = ptr::null_mut();
            napi_call!(env.0, napi_get_property(env.0, v, k, &mut item))?;
            self.value(item, depth + 1)?;
        }
        Ok(())
    }

}

unsafe extern "C" fn js_encode(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, |env, ci| {
        let st = state(env)?;
        let out = &mut st.out;
        out.clear();
        let mut w = Writer { env, out };
        w.value(ci.arg(env, 0)?, 0)?;
        let result = env.buffer_copy(out);
        if out.capacity() > 1 << 20 {
            // Don't keep a huge buffer alive for one large value.
            *out = Vec::with_capacity(64 * 1024);
        }
        result
    })
}

// ---- Frame tapes -------------------------------------------------------------
//
// N-API property reads cost tens of nanoseconds each (every one sets up an
// exception scope), more than msgpackr spends encoding a whole token frame.
// So for the stream, JS lays the frames' fields out flat — a kind byte per
// frame, numbers in a Float64Array, all strings joined into one string with
// their UTF-16 lengths — and one call encodes the run.

/// Frame kinds of a tape (src/protocol/codec.ts, `TapeKind`).
mod kind {
    pub const TOKEN: u8 = 1;
    pub const START: u8 = 2;
    pub const DONE: u8 = 3;
    pub const ERROR: u8 = 4;
    pub const WELCOME: u8 = 5;
    pub const PONG: u8 = 6;
}

/// How each tape field is read: a string, a number, a boolean (a number, 0
/// or 1), or a map of numbers (usage). Optional fields are absent when their
/// number is NaN or their string length is `ABSENT`.
#[derive(Clone, Copy)]
enum Field {
    Str(usize),
    Num(usize),
    Bool(usize),
    Usage,
}

const ABSENT: u32 = u32::MAX;

fn tape_schema(k: u8) -> Option<&'static [Field]> {
    use key::*;
    use Field::*;
    Some(match k {
        kind::TOKEN => &[Num(SEQ), Str(ID), Str(TEXT)],
        kind::START => &[Num(SEQ), Str(ID), Str(CHARACTER), Str(STATE)],
        kind::DONE => &[Num(SEQ), Str(ID), Str(TEXT), Str(STATE), Usage, Str(FINISH)],
        kind::ERROR => &[Num(SEQ), Str(ID), Str(CODE), Str(MESSAGE)],
        kind::WELCOME => &[Str(SESSION), Num(SEQ), Num(HEARTBEAT_MS), Bool(RESUMED), Bool(BATCH)],
        kind::PONG => &[Num(TS)],
        _ => return None,
    })
}

fn type_name(k: u8) -> &'static str {
    match k {
        kind::TOKEN => "token",
        kind::START => "start",
        kind::DONE => "done",
        kind::ERROR => "error",
        kind::WELCOME => "welcome",
        _ => "pong",
    }
}

/// Appends UTF-16 code units as a MessagePack str (UTF-8; a lone surrogate
/// becomes U+FFFD, as V8 writes it).
fn write_utf16_str(out: &mut Vec<u8>, units: &[u16]) -> Result<()> {
    // Exact UTF-8 length first, so the header is written once.
    let mut len = 0usize;
    let mut i = 0;
    while i < units.len() {
        let u = units[i];
        len += if u < 0x80 {
            1
        } else if u < 0x800 {
            2
        } else if (0xd800..0xdc00).contains(&u) && i + 1 < units.len() && (0xdc00..0xe000).contains(&units[i + 1]) {
            i += 1;
            4
        } else {
            3
        };
        i += 1;
    }
    let len32 = u32::try_from(len).map_err(|_| encode_error("string longer than 4 GiB"))?;
    encode::write_str_header(out, len32);
    out.reserve(len);
    if len == units.len() {
        // All ASCII: the common case for tokens.
        out.extend(units.iter().map(|&u| u as u8));
        return Ok(());
    }
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }
    Ok(())
}

struct Tape<'a> {
    nums: &'a [f64],
    lens: &'a [u32],
    text: &'a [u16],
    num_at: usize,
    len_at: usize,
    text_at: usize,
}

impl Tape<'_> {
    fn num(&mut self) -> Result<f64> {
        let n = *self.nums.get(self.num_at).ok_or_else(|| JsError::arg("nums is shorter than the frames need"))?;
        self.num_at += 1;
        Ok(n)
    }

    /// The next string's code units, or None when absent.
    fn str(&mut self) -> Result<Option<&[u16]>> {
        let n = *self.lens.get(self.len_at).ok_or_else(|| JsError::arg("lens is shorter than the frames need"))?;
        self.len_at += 1;
        if n == ABSENT {
            return Ok(None);
        }
        let end = self.text_at + n as usize;
        let units = self.text.get(self.text_at..end).ok_or_else(|| JsError::arg("text is shorter than lens say"))?;
        self.text_at = end;
        Ok(Some(units))
    }

    /// Writes one frame of kind `k` as a map.
    fn frame(&mut self, out: &mut Vec<u8>, packed_keys: &[Vec<u8>], k: u8) -> Result<()> {
        let schema = tape_schema(k).ok_or_else(|| JsError::arg(format!("unknown frame kind {k}")))?;
        let at = out.len();
        out.push(0x80);
        out.extend_from_slice(&packed_keys[key::T]);
        encode::write_str(out, type_name(k));
        let mut n = 1u8;
        for f in schema {
            match *f {
                Field::Str(key) => {
                    if let Some(units) = self.str()? {
                        out.extend_from_slice(&packed_keys[key]);
                        write_utf16_str(out, units)?;
                        n += 1;
                    }
                }
                Field::Num(key) | Field::Bool(key) => {
                    let v = self.num()?;
                    if !v.is_nan() {
                        out.extend_from_slice(&packed_keys[key]);
                        if matches!(f, Field::Bool(_)) {
                            encode::write_bool(out, v != 0.0);
                        } else {
                            encode::write_number(out, v);
                        }
                        n += 1;
                    }
                }
                Field::Usage => {
                    let (p, c) = (self.num()?, self.num()?);
                    out.extend_from_slice(&packed_keys[key::USAGE]);
                    out.push(0x82);
                    out.extend_from_slice(&packed_keys[key::PROMPT_TOKENS]);
                    encode::write_number(out, p);
                    out.extend_from_slice(&packed_keys[key::COMPLETION_TOKENS]);
                    encode::write_number(out, c);
                    n += 1;
                }
            }
        }
        out[at] = 0x80 | n;
        Ok(())
    }
}

/// The typed arrays of one codec's tape, bound once so that each run costs
/// a two-argument call: reading six typed arrays' info per call would
/// double the crossing cost of a single-frame run.
struct BoundTape {
    kinds: (*const u8, usize),
    nums: (*const f64, usize),
    lens: (*const u32, usize),
    out: (*mut u8, usize),
    ends: (*mut u32, usize),
}

unsafe extern "C" fn js_create_frame_tape(env: napi_env, info: napi_callback_info) -> napi_value {
    // createFrameTape(kinds, nums, lens, out, ends)
    callback(env, info, |env, ci| {
        let kinds = env.get_typed::<u8>(ci.arg(env, 0)?, sys::typedarray_type::napi_uint8_array, "kinds", "Uint8Array")?;
        let nums = env.get_typed::<f64>(ci.arg(env, 1)?, sys::typedarray_type::napi_float64_array, "nums", "Float64Array")?;
        let lens = env.get_u32s(ci.arg(env, 2)?, "lens")?;
        let out = env.get_typed::<u8>(ci.arg(env, 3)?, sys::typedarray_type::napi_uint8_array, "out", "Uint8Array")?;
        let ends = env.get_u32s(ci.arg(env, 4)?, "ends")?;
        let tape = BoundTape {
            kinds: (kinds.as_ptr(), kinds.len()),
            nums: (nums.as_ptr(), nums.len()),
            lens: (lens.as_ptr(), lens.len()),
            out: (out.as_ptr() as *mut u8, out.len()),
            ends: (ends.as_ptr() as *mut u32, ends.len()),
        };
        // The external keeps the arrays (and so the pointers) alive.
        env.external(tape, &ci.args[..5])
    })
}

unsafe extern "C" fn js_encode_frame_tape(env: napi_env, info: napi_callback_info) -> napi_value {
    // encodeFrameTape(tape, count, text)
    callback(env, info, |env, ci| {
        let b: &BoundTape = env.get_external(ci.arg(env, 0)?, "tape (from createFrameTape)")?;
        // SAFETY: the arrays are kept alive by the tape's references, their
        // backing stores do not move once their data was read, and nothing
        // else touches them during this call (one JS thread per environment).
        let (kinds, nums, lens, target, ends) = unsafe {
            (
                std::slice::from_raw_parts(b.kinds.0, b.kinds.1),
                std::slice::from_raw_parts(b.nums.0, b.nums.1),
                std::slice::from_raw_parts(b.lens.0, b.lens.1),
                std::slice::from_raw_parts_mut(b.out.0, b.out.1),
                std::slice::from_raw_parts_mut(b.ends.0, b.ends.1),
            )
        };
        let count = env.get_uint(ci.arg(env, 1)?, "count", kinds.len() as u64)? as usize;
        let text_v = ci.arg(env, 2)?;

        let st = state(env)?;
        // The joined strings, as UTF-16 code units in the reusable buffer.
        let units = &mut st.units;
        units.clear();
        if units.capacity() < 4096 {
            units.reserve(4096);
        }
        let mut got = 0usize;
        // SAFETY: `units` has `capacity` writable code units; N-API writes at most capacity-1 plus a NUL.
        let st1 = unsafe { sys::napi_get_value_string_utf16(env.0, text_v, units.as_mut_ptr(), units.capacity(), &mut got) };
        if st1 == crate::sys::status::napi_string_expected {
            return Err(JsError::arg("text must be a string"));
        }
        crate::napi::check(env.0, st1, "napi_get_value_string_utf16")?;
        if got + 1 >= units.capacity() {
            // Possibly cut: ask for the length and read again.
            let mut len = 0usize;
            napi_call!(env.0, napi_get_value_string_utf16(env.0, text_v, ptr::null_mut(), 0, &mut len))?;
            units.reserve(len + 1);
            napi_call!(env.0, napi_get_value_string_utf16(env.0, text_v, units.as_mut_ptr(), len + 1, &mut got))?;
        }
        // SAFETY: N-API wrote `got` code units into the reserved space.
        unsafe { units.set_len(got) };

        let State { packed_keys, out, units, .. } = st;
        out.clear();
        let mut tape = Tape { nums, lens, text: units, num_at: 0, len_at: 0, text_at: 0 };
        let capacity = target.len();
        let mut n = 0usize;
        while n < count && n < ends.len() {
            let before = out.len();
            tape.frame(out, packed_keys, kinds[n])?;
            if out.len() > capacity {
                out.truncate(before);
                break;
            }
            ends[n] = out.len() as u32;
            n += 1;
        }
        target[..out.len()].copy_from_slice(out);
        env.uint32(n as u32)
    })
}

// ---- Decoding ---------------------------------------------------------------

fn decode_error(e: &DecodeError) -> JsError {
    JsError::new("ERR_NATIVE_MSGPACK_DECODE", e.to_string())
        .with(c"offset", Prop::Num(e.offset as f64))
        .with(c"reason", Prop::Str(e.code().to_string()))
}

/// Reads `{ maxDepth, … }` over `base`.
fn read_limits(env: Env, v: napi_value, base: &Limits) -> Result<Limits> {
    if env.type_of(v)? != valuetype::napi_object {
        return Err(JsError::arg("limits must be an object"));
    }
    let mut l = base.clone();
    let get = |name: &CStr, max: u64| -> Result<Option<u64>> {
        match env.get_opt(v, name)? {
            Some(x) => Ok(Some(env.get_uint(x, &format!("limits.{}", name.to_str().unwrap_or("?")), max)?)),
            None => Ok(None),
        }
    };
    if let Some(x) = get(c"maxInputBytes", u32::MAX as u64)? {
        l.max_input_bytes = x as usize;
    }
    if let Some(x) = get(c"maxDepth", MAX_DECODE_DEPTH)? {
        l.max_depth = x as u32;
    }
    if let Some(x) = get(c"maxStrBytes", u32::MAX as u64)? {
        l.max_str_bytes = x as usize;
    }
    if let Some(x) = get(c"maxBinBytes", u32::MAX as u64)? {
        l.max_bin_bytes = x as usize;
    }
    if let Some(x) = get(c"maxContainerLen", u32::MAX as u64)? {
        l.max_container_len = x as usize;
    }
    if let Some(x) = get(c"maxTotalItems", u32::MAX as u64)? {
        l.max_total_items = x as usize;
    }
    Ok(l)
}

/// Takes the reusable tape out of the state, typed for this input's lifetime.
fn take_tape<'a>(st: &mut State) -> Vec<Item<'a>> {
    let mut tape = std::mem::take(&mut st.tape);
    tape.clear();
    // An empty Vec of a type with the same layout: in-place collection
    // keeps the allocation.
    tape.into_iter().map(|_| unreachable!("the tape was cleared")).collect()
}

fn give_tape(st: &mut State, mut tape: Vec<Item<'_>>) {
    tape.clear();
    if tape.capacity() <= 1 << 16 {
        st.tape = tape.into_iter().map(|_| unreachable!("the tape was cleared")).collect();
    }
}

struct Builder<'t> {
    env: Env,
    tape: &'t [Item<'t>],
    pos: usize,
    keys: Keys,
}

impl Builder<'_> {
    fn next(&mut self) -> Result<napi_value> {
        let env = self.env;
        let item = self.tape.get(self.pos).ok_or_else(|| JsError::new("ERR_NATIVE_MSGPACK_DECODE", "decoder tape ended early"))?;
        self.pos += 1;
        let mut v = ptr::null_mut();
        match *item {
            Item::Nil => return env.null(),
            Item::Bool(b) => return env.boolean(b),
            Item::Int(i) => return env.double(i as f64),
            Item::Int64(i) => napi_call!(env.0, napi_create_bigint_int64(env.0, i, &mut v))?,
            Item::UInt64(u) => napi_call!(env.0, napi_create_bigint_uint64(env.0, u, &mut v))?,
            Item::F32(f) => return env.double(f as f64),
            Item::F64(f) => return env.double(f),
            Item::Str(s) => return env.string(s),
            Item::Bin(b) => return env.buffer_copy(b),
            Item::Timestamp { secs, nanos } => {
                let ms = secs as f64 * 1000.0 + (nanos / 1_000_000) as f64;
                napi_call!(env.0, napi_create_date(env.0, ms, &mut v))?;
            }
            // msgpackr's encoding of `undefined`.
            Item::Ext(0, data) if data.len() == 1 => return env.undefined(),
            Item::Ext(t, data) => {
                let obj = env.object()?;
                let tv = env.double(t as f64)?;
                env.set_named(obj, c"type", tv)?;
                let dv = env.buffer_copy(data)?;
                env.set_named(obj, c"data", dv)?;
                return Ok(obj);
            }
            Item::Array(n) => {
                napi_call!(env.0, napi_create_array_with_length(env.0, n as usize, &mut v))?;
                for i in 0..n {
                    let e = self.next()?;
                    napi_call!(env.0, napi_set_element(env.0, v, i, e))?;
                }
            }
            Item::Map(n) => {
                v = env.object()?;
                for _ in 0..n {
                    self.entry(v)?;
                }
            }
        }
        Ok(v)
    }

    /// One key/value pair of a map, set as an own property of `obj`.
    fn entry(&mut self, obj: napi_value) -> Result<()> {
        let env = self.env;
        let k = self.tape.get(self.pos).copied();
        let key = match k {
            Some(Item::Str(s)) => {
                self.pos += 1;
                if s == "__proto__" {
                    // A plain assignment would call Object.prototype's
                    // __proto__ setter and change the object's prototype;
                    // define an ordinary own property instead, as JSON.parse does.
                    let name = env.string(s)?;
                    let value = self.next()?;
                    let desc = sys::napi_property_descriptor {
                        utf8name: ptr::null(),
                        name,
                        method: None,
                        getter: None,
                        setter: None,
                        value,
                        attributes: property_attributes::napi_default_jsproperty,
                        data: ptr::null_mut(),
                    };
                    return napi_call!(env.0, napi_define_properties(env.0, obj, 1, &desc));
                }
                match KEYS.iter().position(|k| *k == s) {
                    Some(i) => self.keys.get(env, i)?,
                    None => env.string(s)?,
                }
            }
            // Like msgpackr's mapsAsObjects: scalar keys become their string form.
            Some(Item::Nil) => {
                self.pos += 1;
                env.string("null")?
            }
            Some(Item::Bool(b)) => {
                self.pos += 1;
                env.string(if b { "true" } else { "false" })?
            }
            Some(Item::Int(_) | Item::Int64(_) | Item::UInt64(_) | Item::F32(_) | Item::F64(_)) => self.next()?,
            _ => {
                return Err(JsError::new("ERR_NATIVE_MSGPACK_DECODE", "map key must be a string, number, boolean or nil to become an object key")
                    .with(c"reason", Prop::Str("unsupported_key".into())))
            }
        };
        let value = self.next()?;
        napi_call!(env.0, napi_set_property(env.0, obj, key, value))
    }
}

/// `decode(bytes, limits?)` and `decodeStream(bytes, limits?)`.
fn decode_call(env: Env, ci: &crate::napi::CallInfo, stream: bool) -> Result<napi_value> {
    let bytes = env.get_bytes(ci.arg(env, 0)?, "bytes")?;
    let st = state(env)?;
    let mut tape = take_tape(st);
    let limits_arg = ci.arg(env, 1)?;
    let custom = if env.type_of(limits_arg)? == valuetype::napi_undefined { None } else { Some(read_limits(env, limits_arg, &Limits::default())?) };
    let limits = custom.as_ref().unwrap_or(&st.limits);
    let decoded = if stream { decode_stream_into(bytes, limits, &mut tape).map(Some) } else { decode_into(bytes, limits, &mut tape).map(|_| None) };
    let result = match decoded {
        Err(e) => Err(decode_error(&e)),
        Ok(count) => {
            let mut b = Builder { env, tape: &tape, pos: 0, keys: Keys::new(st.keys) };
            match count {
                None => b.next(),
                Some(n) => (|| {
                    let mut arr = ptr::null_mut();
                    napi_call!(env.0, napi_create_array_with_length(env.0, n, &mut arr))?;
                    for i in 0..n {
                        let v = b.next()?;
                        napi_call!(env.0, napi_set_element(env.0, arr, i as u32, v))?;
                    }
                    Ok(arr)
                })(),
            }
        }
    };
    give_tape(st, tape);
    result
}

// ---- Decode tapes --------------------------------------------------------------
//
// Building JS objects through N-API costs a call with an exception scope
// per property, three times what msgpackr spends on a whole client frame.
// So for the server's path the decoded value is handed back flat — an op
// per value, numbers (and string lengths, in UTF-16 units) in a
// Float64Array, every string joined into one JS string — and JS builds the
// objects (src/protocol/codec.ts). Values the tape does not cover (BigInt,
// bin, ext, timestamps, container keys) return undefined, and the caller
// uses `decode`.

/// Ops of a decode tape (src/protocol/codec.ts, `DecodeOp`).
mod op {
    pub const NIL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const NUM: u8 = 3;
    pub const STR: u8 = 4;
    pub const ARRAY: u8 = 5;
    pub const MAP: u8 = 6;
    pub const UNDEFINED: u8 = 7;
    /// A map key from `KEYS`; its index is in nums.
    pub const KNOWN_KEY: u8 = 8;
}

struct BoundDecodeTape {
    /// This environment's state, looked up once (it lives as long as the environment).
    state: *mut State,
    ops: (*mut u8, usize),
    nums: (*mut f64, usize),
}

unsafe extern "C" fn js_create_decode_tape(env: napi_env, info: napi_callback_info) -> napi_value {
    // createDecodeTape(ops, nums)
    callback(env, info, |env, ci| {
        let ops = env.get_typed::<u8>(ci.arg(env, 0)?, sys::typedarray_type::napi_uint8_array, "ops", "Uint8Array")?;
        let nums = env.get_typed::<f64>(ci.arg(env, 1)?, sys::typedarray_type::napi_float64_array, "nums", "Float64Array")?;
        let state: *mut State = state(env)?;
        let tape = BoundDecodeTape { state, ops: (ops.as_ptr() as *mut u8, ops.len()), nums: (nums.as_ptr() as *mut f64, nums.len()) };
        // The external keeps the arrays (and so the pointers) alive.
        env.external(tape, &ci.args[..2])
    })
}

/// Lays `tape` out as ops/nums and joined string bytes; None when a value
/// is not covered or the arrays are too small.
fn fill_decode_tape(items: &[Item<'_>], ops: &mut [u8], nums: &mut [f64], text: &mut Vec<u8>, stack: &mut Vec<(u64, bool)>) -> Option<()> {
    let (mut oi, mut ni) = (0usize, 0usize);
    stack.clear();
    for item in items {
        // An even count left in a map: this item is a key.
        let is_key = matches!(stack.last(), Some(&(remaining, true)) if remaining % 2 == 0);
        if is_key && matches!(item, Item::Array(_) | Item::Map(_)) {
            return None;
        }
        if let Some(top) = stack.last_mut() {
            top.0 -= 1;
        }
        let known = match *item {
            Item::Str(s) if is_key => KEYS.iter().position(|k| *k == s),
            _ => None,
        };
        let (o, n): (u8, Option<f64>) = match *item {
            _ if known.is_some() => (op::KNOWN_KEY, known.map(|i| i as f64)),
            Item::Nil => (op::NIL, None),
            Item::Bool(b) => (if b { op::TRUE } else { op::FALSE }, None),
            Item::Int(i) => (op::NUM, Some(i as f64)),
            Item::F32(f) => (op::NUM, Some(f as f64)),
            Item::F64(f) => (op::NUM, Some(f)),
            Item::Str(s) => {
                text.extend_from_slice(s.as_bytes());
                // UTF-16 length: one unit per character, two for those above U+FFFF.
                let units = s.as_bytes().iter().map(|&b| ((b & 0xc0) != 0x80) as usize + (b >= 0xf0) as usize).sum::<usize>();
                (op::STR, Some(units as f64))
            }
            Item::Array(len) => {
                if len > 0 {
                    stack.push((len as u64, false));
                }
                (op::ARRAY, Some(len as f64))
            }
            Item::Map(len) => {
                if len > 0 {
                    stack.push((2 * len as u64, true));
                }
                (op::MAP, Some(len as f64))
            }
            Item::Ext(0, data) if data.len() == 1 => (op::UNDEFINED, None),
            _ => return None,
        };
        *ops.get_mut(oi)? = o;
        oi += 1;
        if let Some(v) = n {
            *nums.get_mut(ni)? = v;
            ni += 1;
        }
        while let Some(&(0, _)) = stack.last() {
            stack.pop();
        }
    }
    Some(())
}

unsafe extern "C" fn js_decode_to_tape(env: napi_env, info: napi_callback_info) -> napi_value {
    // decodeToTape(tape, bytes) -> joined strings, or undefined
    callback(env, info, |env, ci| {
        let b: &BoundDecodeTape = env.get_external(ci.arg(env, 0)?, "tape (from createDecodeTape)")?;
        // SAFETY: the arrays are kept alive by the tape's references, do not
        // move once their data was read, and only this call touches them.
        let (ops, nums) = unsafe { (std::slice::from_raw_parts_mut(b.ops.0, b.ops.1), std::slice::from_raw_parts_mut(b.nums.0, b.nums.1)) };
        let bytes = env.get_bytes(ci.arg(env, 1)?, "bytes")?;
        // SAFETY: the state outlives every tape of its environment, and calls
        // into one environment never overlap.
        let st = unsafe { &mut *b.state };
        let mut tape = take_tape(st);
        let result = match decode_into(bytes, &st.limits, &mut tape) {
            Err(e) => Err(decode_error(&e)),
            Ok(()) => {
                st.out.clear();
                match fill_decode_tape(&tape, ops, nums, &mut st.out, &mut st.stack) {
                    // st.out holds whole strings the decoder validated as UTF-8.
                    Some(()) => {
                        let mut v = ptr::null_mut();
                        napi_call!(env.0, napi_create_string_utf8(env.0, st.out.as_ptr() as *const std::ffi::c_char, st.out.len(), &mut v)).map(|_| v)
                    }
                    None => env.undefined(),
                }
            }
        };
        give_tape(st, tape);
        result
    })
}

unsafe extern "C" fn js_decode(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, |env, ci| decode_call(env, ci, false))
}

unsafe extern "C" fn js_decode_stream(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, |env, ci| decode_call(env, ci, true))
}

unsafe extern "C" fn js_set_decode_limits(env: napi_env, info: napi_callback_info) -> napi_value {
    callback(env, info, |env, ci| {
        let st = state(env)?;
        st.limits = read_limits(env, ci.arg(env, 0)?, &Limits::default())?;
        env.undefined()
    })
}
