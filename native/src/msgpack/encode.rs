//! MessagePack writers.
//!
//! Every writer appends to a caller-owned `Vec<u8>` so one buffer can be reused
//! across frames. The format chosen for each value is exactly the one msgpackr
//! picks with `new Packr({ useRecords: false, variableMapSize: true })`, the
//! configuration of `src/protocol/codec.ts`: frames encoded here and frames
//! encoded by the JS codec are byte-identical, which lets the two be swapped and
//! compared in tests.

/// The largest length a str, bin, ext, array or map header can declare.
pub const MAX_LEN: usize = u32::MAX as usize;

/// `nil`, which is what msgpackr writes for `null`.
#[inline]
pub fn write_nil(buf: &mut Vec<u8>) {
    buf.push(0xc0);
}

/// What msgpackr writes for `undefined` (without `encodeUndefinedAsNil`):
/// fixext1 of type 0 with a zero byte, a convention shared with notepack.
#[inline]
pub fn write_undefined(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0xd4, 0x00, 0x00]);
}

#[inline]
pub fn write_bool(buf: &mut Vec<u8>, v: bool) {
    buf.push(if v { 0xc3 } else { 0xc2 });
}

/// Writes a JS number the way msgpackr does.
///
/// Integers in `0..=u32::MAX` (and `-0`, which msgpackr's `v >>> 0 === v`
/// test lets through as 0) take the smallest of positive fixint (up to 127,
/// because records are off), uint8, uint16, uint32. Integers in
/// `i32::MIN..0` take the smallest of negative fixint, int8, int16, int32.
/// Everything else — fractions, NaN, ±Infinity and integers outside those
/// 32-bit ranges such as 2^32 or -2^31-1 — is a float64; msgpackr never uses
/// the 64-bit integer formats for numbers.
#[inline]
pub fn write_number(buf: &mut Vec<u8>, v: f64) {
    if v >= 0.0 {
        if v <= u32::MAX as f64 {
            let u = v as u32;
            if u as f64 == v {
                write_uint32(buf, u);
                return;
            }
        }
    } else if v >= i32::MIN as f64 {
        let i = v as i32;
        if i as f64 == v {
            write_negative_int32(buf, i);
            return;
        }
    }
    write_f64(buf, v);
}

#[inline]
fn write_uint32(buf: &mut Vec<u8>, u: u32) {
    if u < 0x80 {
        buf.push(u as u8);
    } else if u < 0x100 {
        buf.extend_from_slice(&[0xcc, u as u8]);
    } else if u < 0x1_0000 {
        let b = (u as u16).to_be_bytes();
        buf.extend_from_slice(&[0xcd, b[0], b[1]]);
    } else {
        let b = u.to_be_bytes();
        buf.extend_from_slice(&[0xce, b[0], b[1], b[2], b[3]]);
    }
}

/// `i` must be negative (non-negative values go through `write_uint32`).
#[inline]
fn write_negative_int32(buf: &mut Vec<u8>, i: i32) {
    if i >= -0x20 {
        buf.push(i as u8);
    } else if i >= -0x80 {
        buf.extend_from_slice(&[0xd0, i as u8]);
    } else if i >= -0x8000 {
        let b = (i as i16).to_be_bytes();
        buf.extend_from_slice(&[0xd1, b[0], b[1]]);
    } else {
        let b = i.to_be_bytes();
        buf.extend_from_slice(&[0xd2, b[0], b[1], b[2], b[3]]);
    }
}

/// Writes a BigInt the way msgpackr does: always int64 (0xd3), however small
/// the value, so that it decodes back to a BigInt rather than a number.
#[inline]
pub fn write_i64(buf: &mut Vec<u8>, v: i64) {
    let b = v.to_be_bytes();
    buf.extend_from_slice(&[0xd3, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
}

/// Writes a non-negative BigInt the way msgpackr does: int64 (0xd3) while it
/// fits in `i64`, uint64 (0xcf) only above `i64::MAX`.
#[inline]
pub fn write_u64(buf: &mut Vec<u8>, v: u64) {
    if v <= i64::MAX as u64 {
        write_i64(buf, v as i64);
    } else {
        let b = v.to_be_bytes();
        buf.extend_from_slice(&[0xcf, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    }
}

/// float32 (0xca). msgpackr only writes these with its `useFloat32` option,
/// which npcd does not set, so JS-compatible output should use `write_number`.
#[inline]
pub fn write_f32(buf: &mut Vec<u8>, v: f32) {
    let b = v.to_be_bytes();
    buf.extend_from_slice(&[0xca, b[0], b[1], b[2], b[3]]);
}

/// float64 (0xcb), unconditionally.
#[inline]
pub fn write_f64(buf: &mut Vec<u8>, v: f64) {
    let b = v.to_be_bytes();
    buf.extend_from_slice(&[0xcb, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
}

/// Returns the header bytes and how many of them are used.
#[inline]
fn sized_header(len: u32, fix: Option<(u8, u32)>, m8: Option<u8>, m16: u8, m32: u8) -> ([u8; 5], usize) {
    if let Some((base, limit)) = fix {
        if len < limit {
            return ([base | len as u8, 0, 0, 0, 0], 1);
        }
    }
    if let Some(m8) = m8 {
        if len < 0x100 {
            return ([m8, len as u8, 0, 0, 0], 2);
        }
    }
    if len < 0x1_0000 {
        let b = (len as u16).to_be_bytes();
        ([m16, b[0], b[1], 0, 0], 3)
    } else {
        let b = len.to_be_bytes();
        ([m32, b[0], b[1], b[2], b[3]], 5)
    }
}

#[inline]
fn str_header(len: u32) -> ([u8; 5], usize) {
    sized_header(len, Some((0xa0, 0x20)), Some(0xd9), 0xda, 0xdb)
}

#[inline]
fn bin_header(len: u32) -> ([u8; 5], usize) {
    sized_header(len, None, Some(0xc4), 0xc5, 0xc6)
}

#[inline]
fn checked_len(len: usize) -> u32 {
    match u32::try_from(len) {
        Ok(n) => n,
        Err(_) => too_long(len),
    }
}

#[cold]
#[inline(never)]
fn too_long(len: usize) -> ! {
    panic!("MessagePack cannot represent a length of {len} (the maximum is {MAX_LEN})")
}

/// Header of a string of `len` UTF-8 bytes: fixstr below 32, then str8, str16,
/// str32 — chosen by byte length, as msgpackr does once it has encoded the
/// string. The caller appends exactly `len` bytes of valid UTF-8 afterwards.
#[inline]
pub fn write_str_header(buf: &mut Vec<u8>, len: u32) {
    let (h, n) = str_header(len);
    buf.extend_from_slice(&h[..n]);
}

/// A string, header and bytes.
///
/// # Panics
/// If `s` is longer than [`MAX_LEN`] bytes.
#[inline]
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    let (h, n) = str_header(checked_len(s.len()));
    buf.reserve(n + s.len());
    buf.extend_from_slice(&h[..n]);
    buf.extend_from_slice(s.as_bytes());
}

/// Header of a byte string: bin8, bin16 or bin32, never a str format. The
/// caller appends exactly `len` bytes afterwards.
#[inline]
pub fn write_bin_header(buf: &mut Vec<u8>, len: u32) {
    let (h, n) = bin_header(len);
    buf.extend_from_slice(&h[..n]);
}

/// Bytes, the way msgpackr writes a Buffer or any typed array (it sends the
/// view's bytes as bin, in memory order, whatever the element type).
///
/// # Panics
/// If `data` is longer than [`MAX_LEN`] bytes.
#[inline]
pub fn write_bin(buf: &mut Vec<u8>, data: &[u8]) {
    let (h, n) = bin_header(checked_len(data.len()));
    buf.reserve(n + data.len());
    buf.extend_from_slice(&h[..n]);
    buf.extend_from_slice(data);
}

/// fixarray below 16 elements, then array16, array32.
#[inline]
pub fn write_array_header(buf: &mut Vec<u8>, len: u32) {
    let (h, n) = sized_header(len, Some((0x90, 0x10)), None, 0xdc, 0xdd);
    buf.extend_from_slice(&h[..n]);
}

/// fixmap below 16 pairs, then map16, map32. This is msgpackr's
/// `variableMapSize` behaviour; without that option it always writes map16
/// for plain objects.
#[inline]
pub fn write_map_header(buf: &mut Vec<u8>, len: u32) {
    let (h, n) = sized_header(len, Some((0x80, 0x10)), None, 0xde, 0xdf);
    buf.extend_from_slice(&h[..n]);
}

/// An extension value: fixext1/2/4/8/16 when the payload has exactly that
/// size, otherwise ext8/16/32 (an empty payload is ext8 with length 0).
///
/// # Panics
/// If `data` is longer than [`MAX_LEN`] bytes.
#[inline]
pub fn write_ext(buf: &mut Vec<u8>, ext_type: i8, data: &[u8]) {
    let len = checked_len(data.len());
    let t = ext_type as u8;
    let (h, n): ([u8; 6], usize) = match len {
        1 => ([0xd4, t, 0, 0, 0, 0], 2),
        2 => ([0xd5, t, 0, 0, 0, 0], 2),
        4 => ([0xd6, t, 0, 0, 0, 0], 2),
        8 => ([0xd7, t, 0, 0, 0, 0], 2),
        16 => ([0xd8, t, 0, 0, 0, 0], 2),
        0..=0xff => ([0xc7, len as u8, t, 0, 0, 0], 3),
        0x100..=0xffff => {
            let b = (len as u16).to_be_bytes();
            ([0xc8, b[0], b[1], t, 0, 0], 4)
        }
        _ => {
            let b = len.to_be_bytes();
            ([0xc9, b[0], b[1], b[2], b[3], t], 6)
        }
    };
    buf.reserve(n + data.len());
    buf.extend_from_slice(&h[..n]);
    buf.extend_from_slice(data);
}

/// The timestamp extension (type -1) for `secs` seconds and `nanos`
/// nanoseconds after the Unix epoch, in the format msgpackr picks for a Date:
///
/// * timestamp32 (fixext4) when there is no fractional part and
///   `0 <= secs < 2^32`;
/// * otherwise timestamp64 (fixext8) when the instant is after the epoch
///   and `secs < 2^34` — including whole seconds in `2^32..2^34`;
/// * otherwise timestamp96 (ext8 of 12 bytes): the epoch's fractional
///   neighbourhood before 1970 and anything from 2514 on.
///
/// Before 1970 `secs` is the floor, so -1.5 s is `secs = -2, nanos = 5e8`.
/// `nanos` of a second or more is carried into `secs`, so the output is always
/// a valid timestamp.
#[inline]
pub fn write_timestamp(buf: &mut Vec<u8>, secs: i64, nanos: u32) {
    const NANOS_PER_SEC: u32 = 1_000_000_000;
    let (secs, nanos) = if nanos >= NANOS_PER_SEC {
        (
            secs.saturating_add((nanos / NANOS_PER_SEC) as i64),
            nanos % NANOS_PER_SEC,
        )
    } else {
        (secs, nanos)
    };
    if nanos == 0 && (0..=u32::MAX as i64).contains(&secs) {
        let b = (secs as u32).to_be_bytes();
        buf.extend_from_slice(&[0xd6, 0xff, b[0], b[1], b[2], b[3]]);
    } else if (secs > 0 || (secs == 0 && nanos > 0)) && secs < (1 << 34) {
        let b = (((nanos as u64) << 34) | secs as u64).to_be_bytes();
        buf.extend_from_slice(&[0xd7, 0xff, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    } else {
        let n = nanos.to_be_bytes();
        let s = secs.to_be_bytes();
        buf.extend_from_slice(&[
            0xc7, 12, 0xff, n[0], n[1], n[2], n[3], s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
        ]);
    }
}

/// A JS Date given as its time value (`date.getTime()`, milliseconds since the
/// epoch), byte-identical to msgpackr: a valid date goes through
/// [`write_timestamp`]; an invalid one (NaN, or outside the ±8.64e15 ms a Date
/// can hold) is msgpackr's deliberately invalid timestamp, fixext1 `d4 ff ff`.
/// Fractional milliseconds are truncated, as the Date constructor does.
#[inline]
pub fn write_date(buf: &mut Vec<u8>, ms: f64) {
    const MAX_TIME_MS: f64 = 8.64e15;
    if ms.is_nan() || ms.abs() > MAX_TIME_MS {
        buf.extend_from_slice(&[0xd4, 0xff, 0xff]);
        return;
    }
    // Exact: |ms| <= 8.64e15 < 2^53.
    let ms = ms.trunc() as i64;
    let secs = ms.div_euclid(1000);
    let nanos = ms.rem_euclid(1000) as u32 * 1_000_000;
    write_timestamp(buf, secs, nanos);
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        f(&mut buf);
        hex(&buf)
    }

    /// Head of an encoding and its total length, for values too big to spell out.
    fn enc_head(f: impl FnOnce(&mut Vec<u8>), head: usize) -> (String, usize) {
        let mut buf = Vec::new();
        f(&mut buf);
        (hex(&buf[..head.min(buf.len())]), buf.len())
    }

    // Expected bytes below were produced by msgpackr 2.1.4 with
    // `new Packr({ useRecords: false, variableMapSize: true })`.

    #[test]
    fn numbers_match_msgpackr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "00"),
            (-0.0, "00"),
            (1.0, "01"),
            (31.0, "1f"),
            (32.0, "20"),
            (63.0, "3f"),
            (64.0, "40"),
            (127.0, "7f"),
            (128.0, "cc80"),
            (255.0, "ccff"),
            (256.0, "cd0100"),
            (65535.0, "cdffff"),
            (65536.0, "ce00010000"),
            (2147483648.0, "ce80000000"),
            (4294967295.0, "ceffffffff"),
            (4294967296.0, "cb41f0000000000000"),
            (9007199254740992.0, "cb4340000000000000"),
            (9007199254740994.0, "cb4340000000000001"),
            (9007199254740991.0, "cb433fffffffffffff"),
            (-9007199254740992.0, "cbc340000000000000"),
            (-1.0, "ff"),
            (-32.0, "e0"),
            (-33.0, "d0df"),
            (-128.0, "d080"),
            (-129.0, "d1ff7f"),
            (-32768.0, "d18000"),
            (-32769.0, "d2ffff7fff"),
            (-2147483648.0, "d280000000"),
            (-2147483649.0, "cbc1e0000000200000"),
            (0.5, "cb3fe0000000000000"),
            (-0.5, "cbbfe0000000000000"),
            (1.5, "cb3ff8000000000000"),
            (0.1, "cb3fb999999999999a"),
            (4294967295.5, "cb41effffffff00000"),
            (-2147483647.5, "cbc1dfffffffe00000"),
            (f64::NAN, "cb7ff8000000000000"),
            (f64::INFINITY, "cb7ff0000000000000"),
            (f64::NEG_INFINITY, "cbfff0000000000000"),
            (1e300, "cb7e37e43c8800759c"),
            (1e21, "cb444b1ae4d6e2ef50"),
            (-1e-300, "cb81a56e1fc2f8f359"),
            (5e-324, "cb0000000000000001"),
        ];
        for &(v, want) in cases {
            assert_eq!(enc(|b| write_number(b, v)), want, "number {v:?}");
        }
    }

    #[test]
    fn bigints_match_msgpackr() {
        let signed: &[(i64, &str)] = &[
            (0, "d30000000000000000"),
            (1, "d30000000000000001"),
            (-1, "d3ffffffffffffffff"),
            (127, "d3000000000000007f"),
            (2147483648, "d30000000080000000"),
            (i64::MAX, "d37fffffffffffffff"),
            (i64::MIN, "d38000000000000000"),
        ];
        for &(v, want) in signed {
            assert_eq!(enc(|b| write_i64(b, v)), want, "i64 {v}");
        }
        let unsigned: &[(u64, &str)] = &[
            (0, "d30000000000000000"),
            (127, "d3000000000000007f"),
            (i64::MAX as u64, "d37fffffffffffffff"),
            (1 << 63, "cf8000000000000000"),
            (u64::MAX, "cfffffffffffffffff"),
        ];
        for &(v, want) in unsigned {
            assert_eq!(enc(|b| write_u64(b, v)), want, "u64 {v}");
        }
    }

    #[test]
    fn floats_and_constants() {
        assert_eq!(enc(|b| write_f32(b, 1.5)), "ca3fc00000");
        assert_eq!(enc(|b| write_f64(b, 1.0)), "cb3ff0000000000000");
        assert_eq!(enc(|b| write_f64(b, -0.0)), "cb8000000000000000");
        assert_eq!(enc(write_nil), "c0");
        assert_eq!(enc(write_undefined), "d40000");
        assert_eq!(enc(|b| write_bool(b, true)), "c3");
        assert_eq!(enc(|b| write_bool(b, false)), "c2");
    }

    #[test]
    fn strings_match_msgpackr() {
        assert_eq!(enc(|b| write_str(b, "")), "a0");
        assert_eq!(enc(|b| write_str(b, "a")), "a161");
        assert_eq!(enc(|b| write_str(b, "é")), "a2c3a9");
        assert_eq!(enc(|b| write_str(b, "😀")), "a4f09f9880");
        // 31 bytes, then 32 bytes of 16 two-byte characters: the format follows
        // the byte length, not the character count.
        assert_eq!(
            enc(|b| write_str(b, &format!("{}a", "é".repeat(15)))),
            "bfc3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a961"
        );
        assert_eq!(
            enc(|b| write_str(b, &"é".repeat(16))),
            "d920c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9"
        );
        let cases: &[(usize, &str)] = &[
            (31, "bf61"),
            (32, "d92061"),
            (255, "d9ff61"),
            (256, "da010061"),
            (65535, "daffff61"),
            (65536, "db0001000061"),
        ];
        for &(n, want_head) in cases {
            let s = "a".repeat(n);
            let (head, total) = enc_head(|b| write_str(b, &s), want_head.len() / 2);
            assert_eq!(head, want_head, "str of {n}");
            assert_eq!(total, n + want_head.len() / 2 - 1, "str of {n}");
            // The header writer alone agrees with write_str.
            let (head_only, _) = enc_head(|b| write_str_header(b, n as u32), 8);
            assert_eq!(head_only, want_head[..want_head.len() - 2], "str header {n}");
        }
    }

    #[test]
    fn bin_matches_msgpackr() {
        assert_eq!(enc(|b| write_bin(b, &[])), "c400");
        assert_eq!(enc(|b| write_bin(b, &[7])), "c40107");
        assert_eq!(enc(|b| write_bin(b, &[1, 2, 3])), "c403010203");
        let cases: &[(usize, &str)] = &[
            (255, "c4ff07"),
            (256, "c5010007"),
            (65535, "c5ffff07"),
            (65536, "c60001000007"),
        ];
        for &(n, want_head) in cases {
            let data = vec![7u8; n];
            let (head, total) = enc_head(|b| write_bin(b, &data), want_head.len() / 2);
            assert_eq!(head, want_head, "bin of {n}");
            assert_eq!(total, n + want_head.len() / 2 - 1);
            let (head_only, _) = enc_head(|b| write_bin_header(b, n as u32), 8);
            assert_eq!(head_only, want_head[..want_head.len() - 2]);
        }
    }

    #[test]
    fn container_headers_match_msgpackr() {
        let arrays: &[(u32, &str)] = &[
            (0, "90"),
            (15, "9f"),
            (16, "dc0010"),
            (65535, "dcffff"),
            (65536, "dd00010000"),
        ];
        for &(n, want) in arrays {
            assert_eq!(enc(|b| write_array_header(b, n)), want, "array {n}");
        }
        let maps: &[(u32, &str)] = &[
            (0, "80"),
            (1, "81"),
            (15, "8f"),
            (16, "de0010"),
            (65535, "deffff"),
            (65536, "df00010000"),
        ];
        for &(n, want) in maps {
            assert_eq!(enc(|b| write_map_header(b, n)), want, "map {n}");
        }
        assert_eq!(enc(|b| write_array_header(b, u32::MAX)), "ddffffffff");
        assert_eq!(enc(|b| write_map_header(b, u32::MAX)), "dfffffffff");
    }

    #[test]
    fn ext_formats() {
        let cases: &[(usize, &str)] = &[
            (0, "c70005"),
            (1, "d405"),
            (2, "d505"),
            (3, "c70305"),
            (4, "d605"),
            (5, "c70505"),
            (8, "d705"),
            (16, "d805"),
            (17, "c71105"),
            (255, "c7ff05"),
            (256, "c8010005"),
            (65535, "c8ffff05"),
            (65536, "c90001000005"),
        ];
        for &(n, want_head) in cases {
            let data = vec![0xabu8; n];
            let (head, total) = enc_head(|b| write_ext(b, 5, &data), want_head.len() / 2);
            assert_eq!(head, want_head, "ext of {n}");
            assert_eq!(total, n + want_head.len() / 2);
        }
        assert_eq!(enc(|b| write_ext(b, -128, &[1])), "d48001");
        assert_eq!(enc(|b| write_ext(b, 0, &[0])), "d40000");
    }

    #[test]
    fn dates_match_msgpackr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "d6ff00000000"),
            (1000.0, "d6ff00000001"),
            (500.0, "d7ff7735940000000000"),
            (1.0, "d7ff003d090000000000"),
            (1.5, "d7ff003d090000000000"),
            (1001.0, "d7ff003d090000000001"),
            (-1.0, "c70cff3b8b87c0ffffffffffffffff"),
            (-1000.0, "c70cff00000000ffffffffffffffff"),
            (-1500.0, "c70cff1dcd6500fffffffffffffffe"),
            (-500.0, "c70cff1dcd6500ffffffffffffffff"),
            (4294967295000.0, "d6ffffffffff"),
            (4294967296000.0, "d7ff0000000100000000"),
            (4294967296001.0, "d7ff003d090100000000"),
            (17179869183000.0, "d7ff00000003ffffffff"),
            (17179869183999.0, "d7ffee2e1f03ffffffff"),
            (17179869184000.0, "c70cff000000000000000400000000"),
            (1700000000123.0, "d7ff1d5353006553f100"),
            (8.64e15, "c70cff00000000000007dba8218000"),
            (-8.64e15, "c70cff00000000fffff82457de8000"),
            (-62135596800000.0, "c70cff00000000fffffff1886e0900"),
            (f64::NAN, "d4ffff"),
            (f64::INFINITY, "d4ffff"),
            (8.64e15 + 1.0, "d4ffff"),
        ];
        for &(ms, want) in cases {
            assert_eq!(enc(|b| write_date(b, ms)), want, "date {ms}");
        }
    }

    #[test]
    fn timestamp_edges() {
        assert_eq!(enc(|b| write_timestamp(b, 0, 0)), "d6ff00000000");
        assert_eq!(enc(|b| write_timestamp(b, 0, 1)), "d7ff0000000400000000");
        assert_eq!(
            enc(|b| write_timestamp(b, -1, 999_999_999)),
            "c70cff3b9ac9ffffffffffffffffff"
        );
        // Oversized nanos carry into the seconds.
        assert_eq!(enc(|b| write_timestamp(b, 0, 1_000_000_000)), "d6ff00000001");
        assert_eq!(
            enc(|b| write_timestamp(b, i64::MIN, 0)),
            "c70cff000000008000000000000000"
        );
        assert_eq!(
            enc(|b| write_timestamp(b, i64::MAX, 1_500_000_000)),
            "c70cff1dcd65007fffffffffffffff"
        );
    }
}
