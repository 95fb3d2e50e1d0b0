//! MessagePack reader for untrusted input.
//!
//! Values are decoded into a flat pre-order tape of [`Item`]s that borrow
//! strings and bytes from the input, so a caller can build host objects in one
//! pass without an intermediate tree. The reader never recurses, never panics,
//! and never allocates for a length the input merely claims: a header is only
//! believed once the remaining bytes could hold what it announces.

use std::fmt;

/// Bounds applied while decoding. Every limit is checked before the memory it
/// protects is used; all of them are inclusive maxima.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted input, in bytes, checked before anything is read.
    pub max_input_bytes: usize,
    /// Deepest container nesting. A scalar at the top level has depth 0 and
    /// `[[1]]` has depth 2; with 0 only a scalar top-level value is accepted.
    pub max_depth: u32,
    /// Longest string, in UTF-8 bytes.
    pub max_str_bytes: usize,
    /// Longest bin value, and longest payload of an ext value, in bytes.
    pub max_bin_bytes: usize,
    /// Most elements in one array, or key/value pairs in one map.
    pub max_container_len: usize,
    /// Most values in the whole input, counting containers, map keys and
    /// every scalar — that is, the most tape entries a decode may produce.
    pub max_total_items: usize,
}

impl Default for Limits {
    /// Sized for client messages of a WebSocket server: 1 MiB inputs,
    /// 64 levels, 1 MiB strings and bins, 65536 elements per container and
    /// 2^20 values in total (a 24 MiB tape at most).
    fn default() -> Self {
        Limits {
            max_input_bytes: 1 << 20,
            max_depth: 64,
            max_str_bytes: 1 << 20,
            max_bin_bytes: 1 << 20,
            max_container_len: 65536,
            max_total_items: 1 << 20,
        }
    }
}

impl Limits {
    /// No limits beyond what the input itself can hold; for trusted input.
    pub const fn unlimited() -> Self {
        Limits {
            max_input_bytes: usize::MAX,
            max_depth: u32::MAX,
            max_str_bytes: usize::MAX,
            max_bin_bytes: usize::MAX,
            max_container_len: usize::MAX,
            max_total_items: usize::MAX,
        }
    }
}

/// One decoded value. Containers are followed by their children in pre-order:
/// an `Array(n)` by its `n` elements, a `Map(n)` by `2n` items (key, value,
/// key, value, …), each child itself followed by its own children.
///
/// The variants keep the distinctions msgpackr makes when decoding, so a
/// caller can reproduce its results: `Int` becomes a JS number, while
/// `Int64`/`UInt64` (the 64-bit formats, whatever their value) become BigInts
/// under msgpackr's default `int64AsType`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    Nil,
    Bool(bool),
    /// fixint, int8/16/32 or uint8/16/32: always fits in a JS number.
    Int(i64),
    /// The uint64 format (0xcf), even for small values.
    UInt64(u64),
    /// The int64 format (0xd3), even for small values.
    Int64(i64),
    F32(f32),
    F64(f64),
    /// Validated UTF-8.
    Str(&'a str),
    Bin(&'a [u8]),
    /// Element count; the elements follow.
    Array(u32),
    /// Pair count; `2 *` that many items follow.
    Map(u32),
    /// Any extension type except -1, with its payload. msgpackr decodes type 0
    /// as `undefined` and rejects types it has no handler for; that choice is
    /// left to the caller.
    Ext(i8, &'a [u8]),
    /// The timestamp extension (type -1) in any of its three sizes, with
    /// `nanos < 1_000_000_000`. `secs` counts from the Unix epoch and is the
    /// floor for instants before it.
    Timestamp {
        secs: i64,
        nanos: u32,
    },
}

impl Item<'_> {
    /// How many tape items directly follow this one as its children.
    #[inline]
    pub fn child_items(&self) -> usize {
        match *self {
            Item::Array(n) => n as usize,
            Item::Map(n) => (n as usize).saturating_mul(2),
            _ => 0,
        }
    }
}

/// Index just past the value starting at `tape[start]`, its children
/// included; a caller walking the tape uses it to skip a value, or to find the
/// next top-level value after [`decode_stream_into`].
///
/// Returns `tape.len()` if the tape ends before the value does, which cannot
/// happen for a tape filled by a successful decode.
pub fn value_end(tape: &[Item<'_>], start: usize) -> usize {
    let mut pending = 1usize;
    let mut i = start;
    while pending > 0 && i < tape.len() {
        pending = (pending - 1).saturating_add(tape[i].child_items());
        i += 1;
    }
    i
}

/// Why a timestamp extension was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// The payload was neither 4, 8 nor 12 bytes long.
    Length(usize),
    /// The nanoseconds field was 1e9 or more.
    Nanos(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The value at the error offset, a `what` (a format name such as
    /// "str32", or "value" for a missing marker byte), needs `needed` bytes
    /// counted from that offset but only `remaining` are left. For containers
    /// `needed` is a lower bound, one byte per child (`at_least` is set).
    Truncated {
        what: &'static str,
        needed: usize,
        remaining: usize,
        at_least: bool,
    },
    /// 0xc1, the one byte MessagePack never uses.
    InvalidMarker(u8),
    /// The string starting at the error offset is not UTF-8; its first
    /// `valid_up_to` payload bytes are.
    InvalidUtf8 {
        valid_up_to: usize,
    },
    /// A container would be nested deeper than this `max_depth`.
    DepthExceeded(u32),
    StrTooLong {
        len: usize,
        max: usize,
    },
    BinTooLong {
        len: usize,
        max: usize,
    },
    /// An ext payload longer than `max_bin_bytes`.
    ExtTooLong {
        len: usize,
        max: usize,
    },
    /// An array with more elements (or a map with more pairs, `map` set) than
    /// `max_container_len`.
    ContainerTooLong {
        len: usize,
        max: usize,
        map: bool,
    },
    /// The input holds more than `max_total_items` values.
    TooManyItems {
        max: usize,
    },
    InputTooLarge {
        len: usize,
        max: usize,
    },
    /// A complete value ended at the error offset, but input remains.
    TrailingBytes {
        remaining: usize,
    },
    InvalidTimestamp(TimestampError),
}

impl ErrorKind {
    /// A short, stable reason code for logs, metrics and protocol errors.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::Truncated { .. } => "truncated",
            ErrorKind::InvalidMarker(_) => "invalid_marker",
            ErrorKind::InvalidUtf8 { .. } => "invalid_utf8",
            ErrorKind::DepthExceeded(_) => "too_deep",
            ErrorKind::StrTooLong { .. }
            | ErrorKind::BinTooLong { .. }
            | ErrorKind::ExtTooLong { .. }
            | ErrorKind::ContainerTooLong { .. } => "too_long",
            ErrorKind::TooManyItems { .. } => "too_many_items",
            ErrorKind::InputTooLarge { .. } => "input_too_large",
            ErrorKind::TrailingBytes { .. } => "trailing_bytes",
            ErrorKind::InvalidTimestamp(_) => "invalid_timestamp",
        }
    }
}

/// A decoding failure: what went wrong, and the input offset of the value it
/// concerns (the marker byte of the offending value, or where the input ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub kind: ErrorKind,
}

impl DecodeError {
    /// See [`ErrorKind::code`].
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match self.kind {
            ErrorKind::Truncated {
                what,
                needed,
                remaining,
                at_least,
            } => write!(
                f,
                "truncated input at offset {at}: {what} needs {}{needed} byte{}, {remaining} remain{}",
                if at_least { "at least " } else { "" },
                plural(needed),
                if remaining == 1 { "s" } else { "" },
            ),
            ErrorKind::InvalidMarker(m) => write!(f, "invalid marker 0x{m:02x} at offset {at}"),
            ErrorKind::InvalidUtf8 { valid_up_to } => write!(
                f,
                "invalid UTF-8 in string at offset {at} (after {valid_up_to} valid byte{})",
                plural(valid_up_to)
            ),
            ErrorKind::DepthExceeded(max) => write!(f, "nesting deeper than {max} at offset {at}"),
            ErrorKind::StrTooLong { len, max } => {
                write!(f, "string of {len} bytes at offset {at} exceeds the limit of {max}")
            }
            ErrorKind::BinTooLong { len, max } => {
                write!(f, "binary of {len} bytes at offset {at} exceeds the limit of {max}")
            }
            ErrorKind::ExtTooLong { len, max } => {
                write!(
                    f,
                    "extension payload of {len} bytes at offset {at} exceeds the limit of {max}"
                )
            }
            ErrorKind::ContainerTooLong { len, max, map } => {
                let (name, unit) = if map { ("map", "pair") } else { ("array", "element") };
                write!(
                    f,
                    "{name} of {len} {unit}{} at offset {at} exceeds the limit of {max}",
                    plural(len)
                )
            }
            ErrorKind::TooManyItems { max } => {
                write!(f, "more than {max} value{} in the input at offset {at}", plural(max))
            }
            ErrorKind::InputTooLarge { len, max } => {
                write!(f, "input of {len} bytes exceeds the limit of {max}")
            }
            ErrorKind::TrailingBytes { remaining } => write!(
                f,
                "{remaining} trailing byte{} after the value, at offset {at}",
                plural(remaining)
            ),
            ErrorKind::InvalidTimestamp(TimestampError::Length(len)) => write!(
                f,
                "invalid timestamp at offset {at}: payload of {len} byte{}, expected 4, 8 or 12",
                plural(len)
            ),
            ErrorKind::InvalidTimestamp(TimestampError::Nanos(n)) => {
                write!(
                    f,
                    "invalid timestamp at offset {at}: {n} nanoseconds is a second or more"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes exactly one value from `input` into `tape`, which is cleared
/// first. Input left after the value is an error, as in msgpackr's `unpack`.
/// On error `tape` holds whatever was decoded before the failure.
pub fn decode_into<'a>(input: &'a [u8], limits: &Limits, tape: &mut Vec<Item<'a>>) -> Result<(), DecodeError> {
    tape.clear();
    check_input_size(input, limits)?;
    let mut reader = Reader::new(input, limits);
    reader.read_value(tape)?;
    if reader.pos < input.len() {
        return Err(err(
            reader.pos,
            ErrorKind::TrailingBytes {
                remaining: input.len() - reader.pos,
            },
        ));
    }
    Ok(())
}

/// Decodes a sequence of concatenated values (a batch) into `tape`, which is
/// cleared first, and returns how many top-level values it held; use
/// [`value_end`] to find where each one ends. Empty input is zero values.
/// `max_total_items` bounds the batch as a whole, `max_depth` each value.
pub fn decode_stream_into<'a>(
    input: &'a [u8],
    limits: &Limits,
    tape: &mut Vec<Item<'a>>,
) -> Result<usize, DecodeError> {
    tape.clear();
    check_input_size(input, limits)?;
    let mut reader = Reader::new(input, limits);
    let mut count = 0;
    while reader.pos < input.len() {
        reader.read_value(tape)?;
        count += 1;
    }
    Ok(count)
}

#[inline]
fn check_input_size(input: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    if input.len() > limits.max_input_bytes {
        return Err(err(
            0,
            ErrorKind::InputTooLarge {
                len: input.len(),
                max: limits.max_input_bytes,
            },
        ));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn err(offset: usize, kind: ErrorKind) -> DecodeError {
    DecodeError { offset, kind }
}

/// How many open containers fit without touching the heap; deeper nesting
/// (only possible with a raised `max_depth`) spills into a `Vec`.
const INLINE_DEPTH: usize = 64;

/// Children still expected by each open container, innermost last. Only
/// containers with at least one child still to come are on it, so its length
/// is exactly the nesting depth of the value being read.
struct OpenContainers {
    inline: [usize; INLINE_DEPTH],
    spill: Vec<usize>,
    len: usize,
}

impl OpenContainers {
    fn new() -> Self {
        OpenContainers {
            inline: [0; INLINE_DEPTH],
            spill: Vec::new(),
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, children: usize) {
        if self.len < INLINE_DEPTH {
            self.inline[self.len] = children;
        } else {
            self.spill.push(children);
        }
        self.len += 1;
    }

    /// Records that one child of the innermost container is complete, closing
    /// every container this completes. Returns true once none is open.
    #[inline]
    fn complete_child(&mut self) -> bool {
        while self.len > 0 {
            let top = if self.len <= INLINE_DEPTH {
                &mut self.inline[self.len - 1]
            } else {
                match self.spill.last_mut() {
                    Some(top) => top,
                    None => return true, // unreachable: len tracks spill
                }
            };
            *top -= 1;
            if *top > 0 {
                return false;
            }
            if self.len > INLINE_DEPTH {
                self.spill.pop();
            }
            self.len -= 1;
        }
        true
    }
}

struct Reader<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    limits: &'l Limits,
    /// Tape entries already produced plus children announced by open
    /// containers: what the tape will hold if the input is well formed.
    promised: u64,
    open: OpenContainers,
}

/// A str, bin or ext header: the format's name, the header's size in bytes
/// (for ext including the type byte) and the payload length it declares.
struct Header {
    what: &'static str,
    header: usize,
    len: usize,
}

impl<'a, 'l> Reader<'a, 'l> {
    fn new(input: &'a [u8], limits: &'l Limits) -> Self {
        Reader {
            input,
            pos: 0,
            limits,
            promised: 0,
            open: OpenContainers::new(),
        }
    }

    #[inline]
    fn remaining_from(&self, start: usize) -> usize {
        self.input.len() - start
    }

    /// The `n` bytes starting at `start`, for a value of format `what` that
    /// needs `n` bytes in all.
    #[inline]
    fn bytes(&self, start: usize, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        match self.input.get(start..).and_then(|rest| rest.get(..n)) {
            Some(b) => Ok(b),
            None => Err(self.truncated(start, what, n, false)),
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self, start: usize, what: &'static str, needed: usize, at_least: bool) -> DecodeError {
        err(
            start,
            ErrorKind::Truncated {
                what,
                needed,
                remaining: self.remaining_from(start),
                at_least,
            },
        )
    }

    #[inline]
    /// The header of a str, bin or ext whose length field is 1, 2 or 4 bytes
    /// wide (`width` 0, 1 or 2: the marker's distance from the 8-bit form),
    /// followed by `extra` more header bytes (ext's type).
    fn sized(&self, start: usize, width: u8, names: [&'static str; 3], extra: usize) -> Result<Header, DecodeError> {
        let what = names[width as usize];
        let (len, field) = match width {
            0 => (self.be_u8(start, what)?, 1),
            1 => (self.be_u16(start, what)?, 2),
            _ => (self.be_u32(start, what)? as usize, 4),
        };
        Ok(Header { what, header: 1 + field + extra, len })
    }

    fn be_u8(&self, start: usize, what: &'static str) -> Result<usize, DecodeError> {
        Ok(self.bytes(start, 2, what)?[1] as usize)
    }

    #[inline]
    fn be_u16(&self, start: usize, what: &'static str) -> Result<usize, DecodeError> {
        let b = self.bytes(start, 3, what)?;
        Ok(u16::from_be_bytes([b[1], b[2]]) as usize)
    }

    #[inline]
    fn be_u32(&self, start: usize, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.bytes(start, 5, what)?;
        Ok(u32::from_be_bytes([b[1], b[2], b[3], b[4]]))
    }

    /// The payload of a str/bin/ext whose header is `s`, after checking the
    /// input holds it and then that it is within `max` (truncation wins: a
    /// claim the input cannot back is reported as such, whatever its size).
    #[inline(always)]
    fn payload(
        &self,
        start: usize,
        s: &Header,
        max: usize,
        too_long: fn(usize, usize) -> ErrorKind,
    ) -> Result<&'a [u8], DecodeError> {
        let total = s.header.saturating_add(s.len);
        let b = self.bytes(start, total, s.what)?;
        if s.len > max {
            return Err(err(start, too_long(s.len, max)));
        }
        Ok(&b[s.header..])
    }

    #[inline(always)]
    fn str_payload(&self, start: usize, s: Header) -> Result<(Item<'a>, usize), DecodeError> {
        let b = self.payload(start, &s, self.limits.max_str_bytes, |len, max| ErrorKind::StrTooLong {
            len,
            max,
        })?;
        if b.is_ascii() {
            // SAFETY: ASCII is valid UTF-8.
            return Ok((
                Item::Str(unsafe { std::str::from_utf8_unchecked(b) }),
                s.header + b.len(),
            ));
        }
        match std::str::from_utf8(b) {
            Ok(text) => Ok((Item::Str(text), s.header + b.len())),
            Err(e) => Err(err(
                start,
                ErrorKind::InvalidUtf8 {
                    valid_up_to: e.valid_up_to(),
                },
            )),
        }
    }

    #[inline(always)]
    fn bin_payload(&self, start: usize, s: Header) -> Result<(Item<'a>, usize), DecodeError> {
        let b = self.payload(start, &s, self.limits.max_bin_bytes, |len, max| ErrorKind::BinTooLong {
            len,
            max,
        })?;
        Ok((Item::Bin(b), s.header + b.len()))
    }

    /// `s.header` counts the type byte.
    #[inline]
    fn ext_payload(&self, start: usize, s: Header) -> Result<(Item<'a>, usize), DecodeError> {
        let b = self.payload(start, &s, self.limits.max_bin_bytes, |len, max| ErrorKind::ExtTooLong {
            len,
            max,
        })?;
        let size = s.header + b.len();
        let ext_type = self.input[start + s.header - 1] as i8;
        if ext_type != -1 {
            return Ok((Item::Ext(ext_type, b), size));
        }
        let (secs, nanos) = match b.len() {
            4 => (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64, 0),
            8 => {
                let v = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
            }
            12 => (
                i64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]),
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            ),
            n => return Err(err(start, ErrorKind::InvalidTimestamp(TimestampError::Length(n)))),
        };
        if nanos >= 1_000_000_000 {
            return Err(err(start, ErrorKind::InvalidTimestamp(TimestampError::Nanos(nanos))));
        }
        Ok((Item::Timestamp { secs, nanos }, size))
    }

    /// Checks a container header of `len` children (pairs for a map) and
    /// opens it. `header` is the header's size in bytes.
    #[inline]
    fn container(
        &mut self,
        start: usize,
        what: &'static str,
        header: usize,
        len: u32,
        map: bool,
        tape: &mut Vec<Item<'a>>,
    ) -> Result<Item<'a>, DecodeError> {
        if self.open.len >= self.limits.max_depth as usize {
            return Err(err(start, ErrorKind::DepthExceeded(self.limits.max_depth)));
        }
        let children = if map { 2 * len as u64 } else { len as u64 };
        // Every child takes at least one byte, so this bounds what the
        // header may claim by what the input can hold.
        let needed = header as u64 + children;
        if needed > self.remaining_from(start) as u64 {
            let needed = usize::try_from(needed).unwrap_or(usize::MAX);
            return Err(self.truncated(start, what, needed, true));
        }
        let children = children as usize;
        if len as usize > self.limits.max_container_len {
            return Err(err(
                start,
                ErrorKind::ContainerTooLong {
                    len: len as usize,
                    max: self.limits.max_container_len,
                    map,
                },
            ));
        }
        self.promised += children as u64;
        if self.promised > self.limits.max_total_items as u64 {
            return Err(err(
                start,
                ErrorKind::TooManyItems {
                    max: self.limits.max_total_items,
                },
            ));
        }
        // Bounded by the remaining input and by max_total_items, both checked.
        tape.reserve(children);
        if children > 0 {
            self.open.push(children);
        }
        Ok(if map { Item::Map(len) } else { Item::Array(len) })
    }

    /// Reads one complete top-level value, appending it to `tape`.
    fn read_value(&mut self, tape: &mut Vec<Item<'a>>) -> Result<(), DecodeError> {
        self.promised += 1;
        if self.promised > self.limits.max_total_items as u64 {
            return Err(err(
                self.pos,
                ErrorKind::TooManyItems {
                    max: self.limits.max_total_items,
                },
            ));
        }
        loop {
            let start = self.pos;
            let marker = match self.input.get(start) {
                Some(&m) => m,
                None => return Err(self.truncated(start, "value", 1, false)),
            };
            let (item, size): (Item<'a>, usize) = match marker {
                0x00..=0x7f => (Item::Int(marker as i64), 1),
                0xe0..=0xff => (Item::Int(marker as i8 as i64), 1),
                0x80..=0x8f => (
                    self.container(start, "fixmap", 1, (marker & 0x0f) as u32, true, tape)?,
                    1,
                ),
                0x90..=0x9f => (
                    self.container(start, "fixarray", 1, (marker & 0x0f) as u32, false, tape)?,
                    1,
                ),
                0xa0..=0xbf => self.str_payload(
                    start,
                    Header {
                        what: "fixstr",
                        header: 1,
                        len: (marker & 0x1f) as usize,
                    },
                )?,
                0xc0 => (Item::Nil, 1),
                0xc1 => return Err(err(start, ErrorKind::InvalidMarker(marker))),
                0xc2 => (Item::Bool(false), 1),
                0xc3 => (Item::Bool(true), 1),
                0xc4..=0xc6 => {
                    let s = self.sized(start, marker - 0xc4, ["bin8", "bin16", "bin32"], 0)?;
                    self.bin_payload(start, s)?
                }
                // The header sizes include the type byte, which must be
                // present along with the length.
                0xc7..=0xc9 => {
                    let s = self.sized(start, marker - 0xc7, ["ext8", "ext16", "ext32"], 1)?;
                    self.ext_payload(start, s)?
                }
                0xd4..=0xd8 => {
                    let (what, len) = match marker {
                        0xd4 => ("fixext1", 1),
                        0xd5 => ("fixext2", 2),
                        0xd6 => ("fixext4", 4),
                        0xd7 => ("fixext8", 8),
                        _ => ("fixext16", 16),
                    };
                    self.ext_payload(start, Header { what, header: 2, len })?
                }
                0xca => {
                    let b = self.bytes(start, 5, "float32")?;
                    (Item::F32(f32::from_be_bytes([b[1], b[2], b[3], b[4]])), 5)
                }
                0xcb => {
                    let b = self.bytes(start, 9, "float64")?;
                    (
                        Item::F64(f64::from_be_bytes([b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]])),
                        9,
                    )
                }
                0xcc => (Item::Int(self.be_u8(start, "uint8")? as i64), 2),
                0xcd => (Item::Int(self.be_u16(start, "uint16")? as i64), 3),
                0xce => (Item::Int(self.be_u32(start, "uint32")? as i64), 5),
                0xcf => {
                    let b = self.bytes(start, 9, "uint64")?;
                    (
                        Item::UInt64(u64::from_be_bytes([b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]])),
                        9,
                    )
                }
                0xd0 => {
                    let b = self.bytes(start, 2, "int8")?;
                    (Item::Int(b[1] as i8 as i64), 2)
                }
                0xd1 => {
                    let b = self.bytes(start, 3, "int16")?;
                    (Item::Int(i16::from_be_bytes([b[1], b[2]]) as i64), 3)
                }
                0xd2 => {
                    let b = self.bytes(start, 5, "int32")?;
                    (Item::Int(i32::from_be_bytes([b[1], b[2], b[3], b[4]]) as i64), 5)
                }
                0xd3 => {
                    let b = self.bytes(start, 9, "int64")?;
                    (
                        Item::Int64(i64::from_be_bytes([b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]])),
                        9,
                    )
                }
                0xd9..=0xdb => {
                    let s = self.sized(start, marker - 0xd9, ["str8", "str16", "str32"], 0)?;
                    self.str_payload(start, s)?
                }
                0xdc => {
                    let len = self.be_u16(start, "array16")? as u32;
                    (self.container(start, "array16", 3, len, false, tape)?, 3)
                }
                0xdd => {
                    let len = self.be_u32(start, "array32")?;
                    (self.container(start, "array32", 5, len, false, tape)?, 5)
                }
                0xde => {
                    let len = self.be_u16(start, "map16")? as u32;
                    (self.container(start, "map16", 3, len, true, tape)?, 3)
                }
                0xdf => {
                    let len = self.be_u32(start, "map32")?;
                    (self.container(start, "map32", 5, len, true, tape)?, 5)
                }
            };
            self.pos = start + size;
            let opened = item.child_items() > 0;
            tape.push(item);
            if !opened && self.open.complete_child() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(input: &[u8]) -> Result<Vec<Item<'_>>, DecodeError> {
        let mut tape = Vec::new();
        decode_into(input, &Limits::default(), &mut tape).map(|()| tape)
    }

    fn decode_err(input: &[u8], limits: &Limits) -> DecodeError {
        let mut tape = Vec::new();
        match decode_into(input, limits, &mut tape) {
            Ok(()) => panic!("expected an error, got {tape:?}"),
            Err(e) => e,
        }
    }

    fn one(hex: &str) -> Item<'static> {
        let bytes: &'static [u8] = Box::leak(unhex(hex).into_boxed_slice());
        let tape = decode(bytes).unwrap_or_else(|e| panic!("{hex}: {e}"));
        assert_eq!(tape.len(), 1, "{hex}: {tape:?}");
        tape[0]
    }

    #[test]
    fn item_stays_small() {
        // The tape bound documented on Limits::default assumes this.
        assert_eq!(std::mem::size_of::<Item<'_>>(), 24);
    }

    #[test]
    fn scalars() {
        assert_eq!(one("00"), Item::Int(0));
        assert_eq!(one("7f"), Item::Int(127));
        assert_eq!(one("ff"), Item::Int(-1));
        assert_eq!(one("e0"), Item::Int(-32));
        assert_eq!(one("cc80"), Item::Int(128));
        assert_eq!(one("cdffff"), Item::Int(65535));
        assert_eq!(one("ceffffffff"), Item::Int(4294967295));
        assert_eq!(one("d080"), Item::Int(-128));
        assert_eq!(one("d18000"), Item::Int(-32768));
        assert_eq!(one("d280000000"), Item::Int(-2147483648));
        assert_eq!(one("d30000000000000001"), Item::Int64(1));
        assert_eq!(one("d38000000000000000"), Item::Int64(i64::MIN));
        assert_eq!(one("cf0000000000000001"), Item::UInt64(1));
        assert_eq!(one("cfffffffffffffffff"), Item::UInt64(u64::MAX));
        assert_eq!(one("ca3fc00000"), Item::F32(1.5));
        assert_eq!(one("cb3ff8000000000000"), Item::F64(1.5));
        assert_eq!(one("c0"), Item::Nil);
        assert_eq!(one("c2"), Item::Bool(false));
        assert_eq!(one("c3"), Item::Bool(true));
        assert_eq!(one("a0"), Item::Str(""));
        assert_eq!(one("a3616263"), Item::Str("abc"));
        assert_eq!(one("d903616263"), Item::Str("abc"));
        assert_eq!(one("da0003616263"), Item::Str("abc"));
        assert_eq!(one("db00000003616263"), Item::Str("abc"));
        assert_eq!(one("c400"), Item::Bin(&[]));
        assert_eq!(one("c5000201ff"), Item::Bin(&[1, 0xff]));
        assert_eq!(one("c60000000101"), Item::Bin(&[1]));
        assert_eq!(one("d40000"), Item::Ext(0, &[0]));
        assert_eq!(one("d5800102"), Item::Ext(-128, &[1, 2]));
        assert_eq!(one("c70005"), Item::Ext(5, &[]));
        assert_eq!(one("c8000105aa"), Item::Ext(5, &[0xaa]));
        assert_eq!(one("c90000000105aa"), Item::Ext(5, &[0xaa]));
        assert_eq!(one("90"), Item::Array(0));
        assert_eq!(one("80"), Item::Map(0));
        assert_eq!(one("dc0000"), Item::Array(0));
        assert_eq!(one("df00000000"), Item::Map(0));
    }

    #[test]
    fn timestamps() {
        assert_eq!(one("d6ff00000001"), Item::Timestamp { secs: 1, nanos: 0 });
        assert_eq!(
            one("d6ffffffffff"),
            Item::Timestamp {
                secs: 4294967295,
                nanos: 0
            }
        );
        assert_eq!(
            one("d7ff7735940000000000"),
            Item::Timestamp {
                secs: 0,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            one("d7ffee2e1f03ffffffff"),
            Item::Timestamp {
                secs: 17179869183,
                nanos: 999_000_000
            }
        );
        assert_eq!(
            one("c70cff1dcd6500fffffffffffffffe"),
            Item::Timestamp {
                secs: -2,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            one("c70cff00000000fffff82457de8000"),
            Item::Timestamp {
                secs: -8_640_000_000_000,
                nanos: 0
            }
        );
        // Any format with a valid payload length is accepted, as msgpackr does.
        assert_eq!(one("c704ff00000001"), Item::Timestamp { secs: 1, nanos: 0 });
    }

    #[test]
    fn containers_in_pre_order() {
        // {"a": [1, {"b": nil}], "c": []}
        let input = unhex("82 a161 92 01 81 a162 c0 a163 90");
        let tape = decode(&input).unwrap();
        assert_eq!(
            tape,
            vec![
                Item::Map(2),
                Item::Str("a"),
                Item::Array(2),
                Item::Int(1),
                Item::Map(1),
                Item::Str("b"),
                Item::Nil,
                Item::Str("c"),
                Item::Array(0),
            ]
        );
        assert_eq!(value_end(&tape, 0), 9);
        assert_eq!(value_end(&tape, 2), 7);
        assert_eq!(value_end(&tape, 4), 7);
        assert_eq!(value_end(&tape, 8), 9);
        assert_eq!(value_end(&tape[..3], 0), 3);
    }

    #[test]
    fn stream() {
        let input = unhex("01 92 02 03 a0 80");
        let nested = unhex("9101 9101 9101");
        let truncated = unhex("01 92 02");
        let mut tape = Vec::new();
        assert_eq!(decode_stream_into(&input, &Limits::default(), &mut tape), Ok(4));
        assert_eq!(
            tape,
            vec![
                Item::Int(1),
                Item::Array(2),
                Item::Int(2),
                Item::Int(3),
                Item::Str(""),
                Item::Map(0)
            ]
        );
        assert_eq!(decode_stream_into(&[], &Limits::default(), &mut tape), Ok(0));
        assert!(tape.is_empty());
        let e = decode_stream_into(&truncated, &Limits::default(), &mut tape).unwrap_err();
        assert_eq!((e.offset, e.code()), (1, "truncated"));
        // max_total_items covers the whole batch.
        let limits = Limits {
            max_total_items: 5,
            ..Limits::default()
        };
        let e = decode_stream_into(&input, &limits, &mut tape).unwrap_err();
        assert_eq!((e.offset, e.kind), (5, ErrorKind::TooManyItems { max: 5 }));
        // max_depth applies to each value, not to the batch.
        let limits = Limits {
            max_depth: 1,
            ..Limits::default()
        };
        assert_eq!(decode_stream_into(&nested, &limits, &mut tape), Ok(3));
    }

    #[test]
    fn tape_is_cleared_and_reused() {
        let a = unhex("93010203");
        let b = unhex("a178");
        let mut tape = Vec::new();
        decode_into(&a, &Limits::default(), &mut tape).unwrap();
        assert_eq!(tape.len(), 4);
        let mut tape2: Vec<Item<'_>> = Vec::with_capacity(tape.capacity());
        decode_into(&b, &Limits::default(), &mut tape2).unwrap();
        assert_eq!(tape2, vec![Item::Str("x")]);
    }

    fn check(input: &str, limits: &Limits, offset: usize, kind: ErrorKind, message: &str) {
        let e = decode_err(&unhex(input), limits);
        assert_eq!(e, DecodeError { offset, kind }, "{input}");
        assert_eq!(e.to_string(), message, "{input}");
    }

    #[test]
    fn every_error_kind() {
        let d = Limits::default();
        check(
            "",
            &d,
            0,
            ErrorKind::Truncated {
                what: "value",
                needed: 1,
                remaining: 0,
                at_least: false,
            },
            "truncated input at offset 0: value needs 1 byte, 0 remain",
        );
        check(
            "92 01 db00000023 616263",
            &d,
            2,
            ErrorKind::Truncated {
                what: "str32",
                needed: 40,
                remaining: 8,
                at_least: false,
            },
            "truncated input at offset 2: str32 needs 40 bytes, 8 remain",
        );
        check(
            "db0000",
            &d,
            0,
            ErrorKind::Truncated {
                what: "str32",
                needed: 5,
                remaining: 3,
                at_least: false,
            },
            "truncated input at offset 0: str32 needs 5 bytes, 3 remain",
        );
        check(
            "91 cb00",
            &d,
            1,
            ErrorKind::Truncated {
                what: "float64",
                needed: 9,
                remaining: 2,
                at_least: false,
            },
            "truncated input at offset 1: float64 needs 9 bytes, 2 remain",
        );
        check(
            "dfee6b2800",
            &d,
            0,
            ErrorKind::Truncated {
                what: "map32",
                needed: 8_000_000_005,
                remaining: 5,
                at_least: true,
            },
            "truncated input at offset 0: map32 needs at least 8000000005 bytes, 5 remain",
        );
        check(
            "93 01 02",
            &d,
            0,
            ErrorKind::Truncated {
                what: "fixarray",
                needed: 4,
                remaining: 3,
                at_least: true,
            },
            "truncated input at offset 0: fixarray needs at least 4 bytes, 3 remain",
        );
        check(
            "92 91 01",
            &d,
            3,
            ErrorKind::Truncated {
                what: "value",
                needed: 1,
                remaining: 0,
                at_least: false,
            },
            "truncated input at offset 3: value needs 1 byte, 0 remain",
        );
        check(
            "92 01 c1",
            &d,
            2,
            ErrorKind::InvalidMarker(0xc1),
            "invalid marker 0xc1 at offset 2",
        );
        check(
            "91 a3 61 c3 28",
            &d,
            1,
            ErrorKind::InvalidUtf8 { valid_up_to: 1 },
            "invalid UTF-8 in string at offset 1 (after 1 valid byte)",
        );
        check(
            "9191 91 01",
            &Limits { max_depth: 2, ..d },
            2,
            ErrorKind::DepthExceeded(2),
            "nesting deeper than 2 at offset 2",
        );
        check(
            "91 a3 616263",
            &Limits { max_str_bytes: 2, ..d },
            1,
            ErrorKind::StrTooLong { len: 3, max: 2 },
            "string of 3 bytes at offset 1 exceeds the limit of 2",
        );
        check(
            "c403 010203",
            &Limits { max_bin_bytes: 2, ..d },
            0,
            ErrorKind::BinTooLong { len: 3, max: 2 },
            "binary of 3 bytes at offset 0 exceeds the limit of 2",
        );
        check(
            "d605 01020304",
            &Limits { max_bin_bytes: 2, ..d },
            0,
            ErrorKind::ExtTooLong { len: 4, max: 2 },
            "extension payload of 4 bytes at offset 0 exceeds the limit of 2",
        );
        check(
            "93 01 02 03",
            &Limits {
                max_container_len: 2,
                ..d
            },
            0,
            ErrorKind::ContainerTooLong {
                len: 3,
                max: 2,
                map: false,
            },
            "array of 3 elements at offset 0 exceeds the limit of 2",
        );
        check(
            "91 83 01 01 02 02 03 03",
            &Limits {
                max_container_len: 2,
                ..d
            },
            1,
            ErrorKind::ContainerTooLong {
                len: 3,
                max: 2,
                map: true,
            },
            "map of 3 pairs at offset 1 exceeds the limit of 2",
        );
        check(
            "92 92 01 02 92 03 04",
            &Limits {
                max_total_items: 6,
                ..d
            },
            4,
            ErrorKind::TooManyItems { max: 6 },
            "more than 6 values in the input at offset 4",
        );
        check(
            "01",
            &Limits {
                max_total_items: 0,
                ..d
            },
            0,
            ErrorKind::TooManyItems { max: 0 },
            "more than 0 values in the input at offset 0",
        );
        check(
            "a3616263",
            &Limits {
                max_input_bytes: 3,
                ..d
            },
            0,
            ErrorKind::InputTooLarge { len: 4, max: 3 },
            "input of 4 bytes exceeds the limit of 3",
        );
        check(
            "01 02 03",
            &d,
            1,
            ErrorKind::TrailingBytes { remaining: 2 },
            "2 trailing bytes after the value, at offset 1",
        );
        check(
            "91 d4ff ff",
            &d,
            1,
            ErrorKind::InvalidTimestamp(TimestampError::Length(1)),
            "invalid timestamp at offset 1: payload of 1 byte, expected 4, 8 or 12",
        );
        check(
            "d7ff ffffffff 00000000",
            &d,
            0,
            ErrorKind::InvalidTimestamp(TimestampError::Nanos(0x3fff_ffff)),
            "invalid timestamp at offset 0: 1073741823 nanoseconds is a second or more",
        );
        check(
            "c70cff 3b9aca00 0000000000000001",
            &d,
            0,
            ErrorKind::InvalidTimestamp(TimestampError::Nanos(1_000_000_000)),
            "invalid timestamp at offset 0: 1000000000 nanoseconds is a second or more",
        );
        check(
            "c700ff",
            &d,
            0,
            ErrorKind::InvalidTimestamp(TimestampError::Length(0)),
            "invalid timestamp at offset 0: payload of 0 bytes, expected 4, 8 or 12",
        );
    }

    #[test]
    fn codes() {
        let cases: &[(ErrorKind, &str)] = &[
            (
                ErrorKind::Truncated {
                    what: "x",
                    needed: 1,
                    remaining: 0,
                    at_least: false,
                },
                "truncated",
            ),
            (ErrorKind::InvalidMarker(0xc1), "invalid_marker"),
            (ErrorKind::InvalidUtf8 { valid_up_to: 0 }, "invalid_utf8"),
            (ErrorKind::DepthExceeded(1), "too_deep"),
            (ErrorKind::StrTooLong { len: 1, max: 0 }, "too_long"),
            (ErrorKind::BinTooLong { len: 1, max: 0 }, "too_long"),
            (ErrorKind::ExtTooLong { len: 1, max: 0 }, "too_long"),
            (
                ErrorKind::ContainerTooLong {
                    len: 1,
                    max: 0,
                    map: false,
                },
                "too_long",
            ),
            (ErrorKind::TooManyItems { max: 0 }, "too_many_items"),
            (ErrorKind::InputTooLarge { len: 1, max: 0 }, "input_too_large"),
            (ErrorKind::TrailingBytes { remaining: 1 }, "trailing_bytes"),
            (
                ErrorKind::InvalidTimestamp(TimestampError::Length(0)),
                "invalid_timestamp",
            ),
        ];
        for &(kind, code) in cases {
            assert_eq!(DecodeError { offset: 0, kind }.code(), code);
        }
    }

    #[test]
    fn truncation_is_reported_before_limits() {
        // A header claiming more than the input holds is truncation even when
        // the claim also breaks a limit.
        let tiny = Limits {
            max_str_bytes: 1,
            max_bin_bytes: 1,
            max_container_len: 1,
            max_total_items: 2,
            ..Limits::default()
        };
        for input in [
            "dbffffffff",
            "c6ffffffff",
            "c9ffffffff05",
            "ddffffffff",
            "dfffffffff",
            "dc0003 01",
        ] {
            assert_eq!(decode_err(&unhex(input), &tiny).code(), "truncated", "{input}");
        }
    }

    #[test]
    fn deep_nesting_fails_fast() {
        let input = vec![0x91u8; 10_000];
        let e = decode_err(&input, &Limits::default());
        assert_eq!(
            e,
            DecodeError {
                offset: 64,
                kind: ErrorKind::DepthExceeded(64)
            }
        );
        assert_eq!(e.to_string(), "nesting deeper than 64 at offset 64");
        // Exactly at the limit is fine.
        let mut ok = vec![0x91u8; 64];
        ok.push(0xc0);
        assert_eq!(decode(&ok).unwrap().len(), 65);
        // max_depth 0 admits scalars only, empty containers included.
        let scalars_only = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        assert_eq!(decode_err(&[0x90], &scalars_only).kind, ErrorKind::DepthExceeded(0));
        let mut tape = Vec::new();
        decode_into(&[0x01], &scalars_only, &mut tape).unwrap();
        // Depth beyond the inline stack, with a raised limit and a truncated end.
        let deep = vec![0x91u8; 100_000];
        let e = decode_err(
            &deep,
            &Limits {
                max_depth: u32::MAX,
                ..Limits::unlimited()
            },
        );
        assert_eq!(e.offset, 99_999);
        assert_eq!(e.code(), "truncated");
        let mut deep_ok = vec![0x91u8; 100_000];
        deep_ok.push(0x80);
        decode_into(&deep_ok, &Limits::unlimited(), &mut tape).unwrap();
        assert_eq!(tape.len(), 100_001);
        assert_eq!(tape[100_000], Item::Map(0));
        // Siblings after a deep branch close the right containers.
        let mut siblings = vec![0x92u8; 100];
        siblings.extend(std::iter::repeat_n(0x01, 101));
        decode_into(
            &siblings,
            &Limits {
                max_depth: 100,
                ..Limits::default()
            },
            &mut tape,
        )
        .unwrap();
        assert_eq!(tape.len(), 201);
    }

    #[test]
    fn huge_claims_do_not_allocate() {
        for input in [
            "df ee6b2800 01",
            "dd ffffffff",
            "db ffffffff 61",
            "c6 ffffffff",
            "c9 ffffffff 01",
        ] {
            let bytes = unhex(input);
            let mut tape = Vec::new();
            let e = decode_into(&bytes, &Limits::unlimited(), &mut tape).unwrap_err();
            assert_eq!(e.code(), "truncated", "{input}");
            assert!(tape.capacity() < 1024, "{input}: reserved {}", tape.capacity());
        }
    }
}
