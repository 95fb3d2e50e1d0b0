//! Tests that exercise the writer and the reader together: round trips of
//! random values, messages produced by msgpackr, truncation and fuzzing.

use super::decode::{decode_into, decode_stream_into, value_end, Item, Limits};
use super::encode::*;

/// xorshift64*: deterministic, so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An owned tree, only for generating inputs.
#[derive(Debug, Clone)]
enum Value {
    Nil,
    Bool(bool),
    /// Within the 32-bit ranges, so `write_number` gives an int format.
    Int(i64),
    /// Above `i64::MAX`, so `write_u64` gives uint64.
    UInt64(u64),
    Int64(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Ext(i8, Vec<u8>),
    Timestamp(i64, u32),
}

const BOUNDARY_LENGTHS: &[usize] = &[0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536];

fn gen_len(rng: &mut Rng) -> usize {
    if rng.chance(40) {
        BOUNDARY_LENGTHS[rng.below(BOUNDARY_LENGTHS.len() as u64) as usize]
    } else if rng.chance(8) {
        rng.below(300) as usize
    } else {
        rng.below(40) as usize
    }
}

fn gen_string(rng: &mut Rng) -> String {
    let target = gen_len(rng);
    let mut s = String::with_capacity(target);
    while s.len() < target {
        let c = match rng.below(10) {
            0 => char::from_u32(0x80 + rng.below(0x780) as u32),
            1 => char::from_u32(0x800 + rng.below(0xf800 - 0x800) as u32),
            2 => char::from_u32(0x10000 + rng.below(0x100000) as u32),
            _ => char::from_u32(0x20 + rng.below(0x5f) as u32),
        };
        if let Some(c) = c {
            if s.len() + c.len_utf8() <= target || rng.chance(4) {
                s.push(c);
            }
        }
    }
    s
}

fn gen_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = gen_len(rng);
    (0..n).map(|_| rng.next() as u8).collect()
}

fn gen_f64(rng: &mut Rng) -> f64 {
    match rng.below(8) {
        0 => [
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            4294967296.0,
            -2147483649.0,
        ][rng.below(8) as usize],
        1 => f64::from_bits(rng.next()),
        2 => (rng.next() as i64 >> rng.below(64)) as f64,
        _ => (rng.next() as i64 >> 20) as f64 / 1024.0,
    }
}

fn gen_value(rng: &mut Rng, depth: u32) -> Value {
    let kinds = if depth >= 6 { 11 } else { 13 };
    match rng.below(kinds) {
        0 => Value::Nil,
        1 => Value::Bool(rng.chance(2)),
        2 => Value::Int(match rng.below(4) {
            0 => rng.below(128) as i64,
            1 => -(rng.below(33) as i64),
            2 => [
                0,
                127,
                128,
                255,
                256,
                65535,
                65536,
                u32::MAX as i64,
                -32,
                -33,
                -128,
                -129,
                -32768,
                -32769,
                i32::MIN as i64,
            ][rng.below(15) as usize],
            _ => (rng.next() as i64).rem_euclid(u32::MAX as i64 + 1 - i32::MIN as i64) + i32::MIN as i64,
        }),
        3 => Value::UInt64(rng.next() | (1 << 63)),
        4 => Value::Int64(rng.next() as i64 >> rng.below(64)),
        5 => Value::F32(if rng.chance(2) {
            f32::from_bits(rng.next() as u32)
        } else {
            gen_f64(rng) as f32
        }),
        6 => Value::F64(gen_f64(rng)),
        7 => Value::Str(gen_string(rng)),
        8 => Value::Bin(gen_bytes(rng)),
        9 => {
            let mut t = rng.next() as i8;
            if t == -1 {
                t = 0;
            }
            Value::Ext(t, gen_bytes(rng))
        }
        10 => {
            let secs = match rng.below(4) {
                0 => rng.below(1 << 32) as i64,
                1 => rng.below(1 << 34) as i64,
                2 => rng.next() as i64,
                _ => rng.below(2000) as i64 - 1000,
            };
            let nanos = if rng.chance(2) {
                0
            } else {
                rng.below(1_000_000_000) as u32
            };
            Value::Timestamp(secs, nanos)
        }
        11 => {
            let n = if rng.chance(4) { rng.below(20) } else { rng.below(4) };
            Value::Array((0..n).map(|_| gen_value(rng, depth + 1)).collect())
        }
        _ => {
            let n = if rng.chance(4) { rng.below(20) } else { rng.below(4) };
            Value::Map(
                (0..n)
                    .map(|_| (gen_value(rng, depth + 1), gen_value(rng, depth + 1)))
                    .collect(),
            )
        }
    }
}

fn encode_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => write_nil(buf),
        Value::Bool(b) => write_bool(buf, *b),
        Value::Int(i) => write_number(buf, *i as f64),
        Value::UInt64(u) => write_u64(buf, *u),
        Value::Int64(i) => write_i64(buf, *i),
        Value::F32(f) => write_f32(buf, *f),
        Value::F64(f) => write_f64(buf, *f),
        Value::Str(s) => write_str(buf, s),
        Value::Bin(b) => write_bin(buf, b),
        Value::Array(items) => {
            write_array_header(buf, items.len() as u32);
            for item in items {
                encode_value(buf, item);
            }
        }
        Value::Map(pairs) => {
            write_map_header(buf, pairs.len() as u32);
            for (k, v) in pairs {
                encode_value(buf, k);
                encode_value(buf, v);
            }
        }
        Value::Ext(t, data) => write_ext(buf, *t, data),
        Value::Timestamp(secs, nanos) => write_timestamp(buf, *secs, *nanos),
    }
}

/// The tape a decode of `v` should produce.
fn flatten<'a>(v: &'a Value, out: &mut Vec<Item<'a>>) {
    match v {
        Value::Nil => out.push(Item::Nil),
        Value::Bool(b) => out.push(Item::Bool(*b)),
        Value::Int(i) => out.push(Item::Int(*i)),
        Value::UInt64(u) => out.push(Item::UInt64(*u)),
        Value::Int64(i) => out.push(Item::Int64(*i)),
        Value::F32(f) => out.push(Item::F32(*f)),
        Value::F64(f) => out.push(Item::F64(*f)),
        Value::Str(s) => out.push(Item::Str(s)),
        Value::Bin(b) => out.push(Item::Bin(b)),
        Value::Array(items) => {
            out.push(Item::Array(items.len() as u32));
            for item in items {
                flatten(item, out);
            }
        }
        Value::Map(pairs) => {
            out.push(Item::Map(pairs.len() as u32));
            for (k, v) in pairs {
                flatten(k, out);
                flatten(v, out);
            }
        }
        Value::Ext(t, data) => out.push(Item::Ext(*t, data)),
        Value::Timestamp(secs, nanos) => out.push(Item::Timestamp {
            secs: *secs,
            nanos: *nanos,
        }),
    }
}

/// Equality that tells NaNs and zeros apart by their bits.
fn same(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a, b) {
        (Item::F32(x), Item::F32(y)) => x.to_bits() == y.to_bits(),
        (Item::F64(x), Item::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn same_tape(a: &[Item<'_>], b: &[Item<'_>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Writes a tape back out in the formats it was read from (as far as the
/// tape tells them apart), so reading the output gives the same tape.
fn encode_tape(tape: &[Item<'_>], buf: &mut Vec<u8>) {
    for item in tape {
        match *item {
            Item::Nil => write_nil(buf),
            Item::Bool(b) => write_bool(buf, b),
            Item::Int(i) => write_number(buf, i as f64),
            Item::UInt64(u) => {
                buf.push(0xcf);
                buf.extend_from_slice(&u.to_be_bytes());
            }
            Item::Int64(i) => write_i64(buf, i),
            Item::F32(f) => write_f32(buf, f),
            Item::F64(f) => write_f64(buf, f),
            Item::Str(s) => write_str(buf, s),
            Item::Bin(b) => write_bin(buf, b),
            Item::Array(n) => write_array_header(buf, n),
            Item::Map(n) => write_map_header(buf, n),
            Item::Ext(t, data) => write_ext(buf, t, data),
            Item::Timestamp { secs, nanos } => write_timestamp(buf, secs, nanos),
        }
    }
}

#[test]
fn random_values_round_trip() {
    let mut rng = Rng::new(1);
    for case in 0..3000 {
        let v = gen_value(&mut rng, 0);
        let mut buf = Vec::new();
        encode_value(&mut buf, &v);
        let mut expected = Vec::new();
        flatten(&v, &mut expected);
        let mut tape = Vec::new();
        decode_into(&buf, &Limits::unlimited(), &mut tape).unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert!(same_tape(&tape, &expected), "case {case}: {v:?}");
        assert_eq!(value_end(&tape, 0), tape.len());
        // The writer picks one encoding per item, so re-encoding is exact.
        let mut reencoded = Vec::new();
        encode_tape(&tape, &mut reencoded);
        assert_eq!(reencoded, buf, "case {case}");
    }
}

#[test]
fn random_batches_round_trip() {
    let mut rng = Rng::new(2);
    for case in 0..500 {
        let values: Vec<Value> = (0..rng.below(6)).map(|_| gen_value(&mut rng, 2)).collect();
        let mut buf = Vec::new();
        let mut expected = Vec::new();
        for v in &values {
            encode_value(&mut buf, v);
            flatten(v, &mut expected);
        }
        let mut tape = Vec::new();
        assert_eq!(
            decode_stream_into(&buf, &Limits::unlimited(), &mut tape),
            Ok(values.len()),
            "case {case}"
        );
        assert!(same_tape(&tape, &expected), "case {case}");
        let mut start = 0;
        for _ in &values {
            start = value_end(&tape, start);
        }
        assert_eq!(start, tape.len());
    }
}

#[test]
fn numbers_round_trip_through_write_number() {
    let mut rng = Rng::new(3);
    for _ in 0..20_000 {
        let v = gen_f64(&mut rng);
        let mut buf = Vec::new();
        write_number(&mut buf, v);
        let mut tape = Vec::new();
        decode_into(&buf, &Limits::default(), &mut tape).unwrap();
        match tape[0] {
            Item::Int(i) => assert!(i as f64 == v && v.fract() == 0.0, "{v}"),
            Item::F64(f) => {
                assert_eq!(f.to_bits(), v.to_bits());
                let integral32 = v.fract() == 0.0 && v >= i32::MIN as f64 && v <= u32::MAX as f64;
                assert!(!integral32, "{v} should have used an int format");
            }
            other => panic!("{v}: {other:?}"),
        }
    }
}

#[test]
fn dates_round_trip_at_millisecond_precision() {
    let mut rng = Rng::new(4);
    for _ in 0..20_000 {
        let ms = (rng.next() as i64 % 8_640_000_000_000_000) >> rng.below(40);
        let mut buf = Vec::new();
        write_date(&mut buf, ms as f64);
        let mut tape = Vec::new();
        decode_into(&buf, &Limits::default(), &mut tape).unwrap();
        match tape[0] {
            Item::Timestamp { secs, nanos } => {
                assert_eq!(secs * 1000 + (nanos / 1_000_000) as i64, ms);
                assert_eq!(nanos % 1_000_000, 0);
            }
            other => panic!("{ms}: {other:?}"),
        }
    }
}

// Whole messages packed by msgpackr 2.1.4 (useRecords: false,
// variableMapSize: true): a frame-like object with every value type, the
// number boundaries, nested maps and long strings, Dates in all three
// timestamp sizes, a 20-key map and a 17-element array.
const MSGPACKR_MESSAGES: &[&str] = &[
    "89a474797065a3736179a269642aa474657874ab68c3a96c6c6f20f09f9880a27473d7ff1d5353006553f100a16ecbbff4000000000000a3626967d3000000000000007ba475626967cfffffffffffffffffa66e657374656496c0c3c2d400009080a362696ec404000102ff",
    "dc0017007fcc80ccffcd0100cdffffce00010000ceffffffffcb41f0000000000000ffe0d0dfd080d1ff7fd18000d2ffff7fffd280000000cbc1e0000000200000cb3fe0000000000000cb7ff8000000000000cb7ff0000000000000cbfff000000000000000",
    "83a16181a16281a16381a1649201920292039104d9286b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6bda012c767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676a165a0",
    "96d6ff00000000c70cff3b8b87c0ffffffffffffffffd7ff0000000100000000c70cff000000000000000400000000c70cff00000000fffff82457de8000d7ff7735940000000000",
    "de0014a46b65793000a46b657931cd03e8a46b657932cd07d0a46b657933cd0bb8a46b657934cd0fa0a46b657935cd1388a46b657936cd1770a46b657937cd1b58a46b657938cd1f40a46b657939cd2328a56b65793130cd2710a56b65793131cd2af8a56b65793132cd2ee0a56b65793133cd32c8a56b65793134cd36b0a56b65793135cd3a98a56b65793136cd3e80a56b65793137cd4268a56b65793138cd4650a56b65793139cd4a38",
    "dc0011a27330a27331a27332a27333a27334a27335a27336a27337a27338a27339a3733130a3733131a3733132a3733133a3733134a3733135a3733136",
];

#[test]
fn msgpackr_messages_decode_and_reencode_identically() {
    for hex in MSGPACKR_MESSAGES {
        let bytes = unhex(hex);
        let mut tape = Vec::new();
        decode_into(&bytes, &Limits::default(), &mut tape).unwrap_or_else(|e| panic!("{hex}: {e}"));
        let mut out = Vec::new();
        encode_tape(&tape, &mut out);
        assert_eq!(out, bytes, "{hex}");
    }
    // Spot-check the first message's distinctions.
    let bytes = unhex(MSGPACKR_MESSAGES[0]);
    let mut tape = Vec::new();
    decode_into(&bytes, &Limits::default(), &mut tape).unwrap();
    assert!(tape.contains(&Item::Str("héllo 😀")));
    assert!(tape.contains(&Item::Int64(123)));
    assert!(tape.contains(&Item::UInt64(u64::MAX)));
    assert!(tape.contains(&Item::Ext(0, &[0])));
    assert!(tape.contains(&Item::Timestamp {
        secs: 1_700_000_000,
        nanos: 123_000_000
    }));
    assert!(tape.contains(&Item::Bin(&[0, 1, 2, 255])));
}

#[test]
fn every_prefix_is_truncated() {
    let mut messages: Vec<Vec<u8>> = MSGPACKR_MESSAGES.iter().map(|h| unhex(h)).collect();
    let mut rng = Rng::new(5);
    for _ in 0..40 {
        let mut buf = Vec::new();
        encode_value(&mut buf, &gen_value(&mut rng, 0));
        if buf.len() < 5000 {
            messages.push(buf);
        }
    }
    for msg in &messages {
        let mut tape = Vec::new();
        decode_into(msg, &Limits::unlimited(), &mut tape).unwrap();
        for cut in 0..msg.len() {
            let e = decode_into(&msg[..cut], &Limits::unlimited(), &mut tape).unwrap_err();
            assert_eq!(e.code(), "truncated", "prefix {cut} of {}: {e}", msg.len());
            assert!(e.offset <= cut, "prefix {cut}: {e}");
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(3) {
        if input.is_empty() {
            input.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(input.len() as u64) as usize;
        match rng.below(6) {
            0 => input[at] = rng.next() as u8,
            1 => input[at] ^= 1 << rng.below(8),
            2 => input.truncate(at),
            3 => input.insert(at, rng.next() as u8),
            4 => {
                input.remove(at);
            }
            _ => input[at] = [0xc1, 0xdb, 0xdd, 0xdf, 0xc9, 0xff, 0x00, 0xd6][rng.below(8) as usize],
        }
    }
}

#[test]
fn fuzz_never_panics() {
    let mut rng = Rng::new(6);
    let small = Limits {
        max_input_bytes: 4096,
        max_depth: 4,
        max_str_bytes: 16,
        max_bin_bytes: 16,
        max_container_len: 8,
        max_total_items: 64,
    };
    let corpus: Vec<Vec<u8>> = (0..200)
        .map(|_| {
            let mut buf = Vec::new();
            encode_value(&mut buf, &gen_value(&mut rng, 3));
            buf
        })
        .collect();
    let (mut ok, mut failed) = (0u32, 0u32);
    for case in 0..150_000u32 {
        let mut input = Vec::new();
        if case % 2 == 0 {
            let n = rng.below(48) as usize;
            input.extend((0..n).map(|_| rng.next() as u8));
        } else {
            input.extend_from_slice(&corpus[rng.below(corpus.len() as u64) as usize]);
            mutate(&mut rng, &mut input);
        }
        let limits = if case % 3 == 0 { small } else { Limits::default() };
        let mut tape = Vec::new();
        let result = if case % 5 == 0 {
            decode_stream_into(&input, &limits, &mut tape).map(|_| ())
        } else {
            decode_into(&input, &limits, &mut tape)
        };
        match result {
            Ok(()) => {
                ok += 1;
                assert!(tape.len() <= limits.max_total_items);
                if case % 5 != 0 {
                    assert_eq!(value_end(&tape, 0), tape.len(), "case {case}");
                }
                let mut reencoded = Vec::new();
                encode_tape(&tape, &mut reencoded);
                let mut check = Vec::new();
                decode_stream_into(&reencoded, &Limits::unlimited(), &mut check).unwrap();
                assert!(same_tape(&tape, &check), "case {case}");
            }
            Err(e) => {
                failed += 1;
                assert!(e.offset <= input.len(), "case {case}: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // Both paths were exercised.
    assert!(ok > 10_000 && failed > 10_000, "ok {ok}, failed {failed}");
}

#[test]
fn huge_map_claim_fails_quickly() {
    let input = [0xdf, 0xee, 0x6b, 0x28, 0x00, 0x01, 0x02];
    let mut tape = Vec::new();
    let start = std::time::Instant::now();
    let e = decode_into(&input, &Limits::default(), &mut tape).unwrap_err();
    assert_eq!(e.code(), "truncated");
    assert!(tape.capacity() < 64);
    assert!(start.elapsed().as_millis() < 100);
}
