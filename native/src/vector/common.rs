//! Pieces shared by the flat and HNSW indexes: metrics, errors, aligned
//! vector storage, the id map, top-k selection and the visited set.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use super::distance::{Kernels, RawKernel};

/// Largest accepted dimension. Far above any embedding model; it bounds
/// allocations made from untrusted saved bytes.
pub const MAX_DIM: usize = 1 << 16;

/// Largest number of vector slots: slot numbers are u32 and `u32::MAX` is
/// reserved as "none".
pub const MAX_SLOTS: usize = u32::MAX as usize - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Vectors are normalised on the way in, so cosine similarity is a dot
    /// product; distance = 1 - cos.
    Cosine,
    /// distance = 1 - dot, as hnswlib's InnerProductSpace.
    InnerProduct,
    /// Squared Euclidean distance, as hnswlib's L2Space.
    L2,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "cosine" => Some(Metric::Cosine),
            "ip" => Some(Metric::InnerProduct),
            "l2" => Some(Metric::L2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
            Metric::L2 => "l2",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Metric::Cosine => 0,
            Metric::InnerProduct => 1,
            Metric::L2 => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Metric> {
        match b {
            0 => Some(Metric::Cosine),
            1 => Some(Metric::InnerProduct),
            2 => Some(Metric::L2),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum VectorError {
    /// A vector or query has the wrong number of components.
    DimMismatch { what: &'static str, expected: usize, got: usize },
    /// An option or argument is out of range.
    BadParam(String),
    /// A vector or query contains NaN or an infinity.
    NonFinite { what: &'static str },
    /// Saved bytes are truncated, damaged or inconsistent.
    Corrupt(String),
    /// Saved bytes come from a format version this build cannot read.
    UnsupportedVersion(u32),
    /// The index cannot hold more vectors.
    Capacity,
}

impl VectorError {
    /// Stable machine-readable code; the binding turns it into
    /// `ERR_NATIVE_VECTOR_<CODE>`.
    pub fn code(&self) -> &'static str {
        match self {
            VectorError::DimMismatch { .. } => "dim_mismatch",
            VectorError::BadParam(_) => "bad_param",
            VectorError::NonFinite { .. } => "non_finite",
            VectorError::Corrupt(_) => "corrupt",
            VectorError::UnsupportedVersion(_) => "unsupported_version",
            VectorError::Capacity => "capacity",
        }
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> VectorError {
        VectorError::Corrupt(msg.into())
    }
}

impl fmt::Display for VectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VectorError::DimMismatch { what, expected, got } => {
                write!(f, "{what} has {got} components, the index has dim {expected}")
            }
            VectorError::BadParam(m) => f.write_str(m),
            VectorError::NonFinite { what } => write!(f, "{what} contains NaN or an infinite value"),
            VectorError::Corrupt(m) => write!(f, "saved index is corrupt: {m}"),
            VectorError::UnsupportedVersion(v) => write!(f, "saved index has format version {v}, which this build cannot read"),
            VectorError::Capacity => write!(f, "the index cannot hold more than {MAX_SLOTS} vectors"),
        }
    }
}

impl std::error::Error for VectorError {}

pub type Result<T> = std::result::Result<T, VectorError>;

/// One search hit: caller id and distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub id: u32,
    pub distance: f32,
}

/// Distance function for one metric, bound to the runtime-selected kernels.
#[derive(Clone, Copy)]
pub(crate) struct DistFn {
    raw: RawKernel,
    l2: bool,
}

impl DistFn {
    pub fn new(metric: Metric, k: &Kernels) -> DistFn {
        match metric {
            Metric::L2 => DistFn { raw: k.raw_l2sq(), l2: true },
            _ => DistFn { raw: k.raw_dot(), l2: false },
        }
    }

    /// # Safety
    /// `a` and `b` must be valid for `n` reads.
    #[inline(always)]
    pub unsafe fn eval(&self, a: *const f32, b: *const f32, n: usize) -> f32 {
        let r = (self.raw)(a, b, n);
        if self.l2 {
            r
        } else {
            1.0 - r
        }
    }
}

/// Checks a caller vector's length and values.
pub(crate) fn check_vector(v: &[f32], dim: usize, what: &'static str) -> Result<()> {
    if v.len() != dim {
        return Err(VectorError::DimMismatch { what, expected: dim, got: v.len() });
    }
    if !v.iter().all(|x| x.is_finite()) {
        return Err(VectorError::NonFinite { what });
    }
    Ok(())
}

/// Copies `v` into `out` (already `stride` long, zero padded), normalising
/// for cosine. A zero vector stays zero: its cosine distance to everything
/// is then 1, as in hnswlib.
pub(crate) fn prepare_into(v: &[f32], metric: Metric, out: &mut [f32]) {
    out[..v.len()].copy_from_slice(v);
    for x in &mut out[v.len()..] {
        *x = 0.0;
    }
    if metric == Metric::Cosine {
        let norm: f64 = v.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            for x in &mut out[..v.len()] {
                *x *= inv;
            }
        }
    }
}

/// Floats per padding unit: rows are padded to whole 64-byte cache lines so
/// every row starts aligned and the kernels never see a partial vector.
pub(crate) const LANE: usize = 16;

pub(crate) fn stride_for(dim: usize) -> usize {
    dim.div_ceil(LANE) * LANE
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line([f32; LANE]);

/// Row-major f32 matrix with 64-byte aligned, zero-padded rows.
#[derive(Clone)]
pub(crate) struct Rows {
    lines: Vec<Line>,
    stride: usize,
}

impl Rows {
    pub fn new(stride: usize) -> Rows {
        debug_assert!(stride.is_multiple_of(LANE) && stride > 0);
        Rows { lines: Vec::new(), stride }
    }

    #[inline]
    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn len(&self) -> usize {
        self.lines.len() * LANE / self.stride
    }

    pub fn reserve(&mut self, rows: usize) {
        let cap = self.lines.capacity();
        self.lines.reserve(rows * self.stride / LANE);
        if self.lines.capacity() != cap {
            advise_huge_pages(&self.lines);
        }
    }

    pub fn push_zeroed(&mut self) -> usize {
        let r = self.len();
        let cap = self.lines.capacity();
        self.lines.resize(self.lines.len() + self.stride / LANE, Line([0.0; LANE]));
        if self.lines.capacity() != cap {
            advise_huge_pages(&self.lines);
        }
        r
    }

    pub fn truncate(&mut self, rows: usize) {
        self.lines.truncate(rows * self.stride / LANE);
    }

    #[inline(always)]
    pub fn ptr(&self, row: usize) -> *const f32 {
        debug_assert!(row < self.len());
        // SAFETY: callers pass rows below `len`; the offset stays inside the
        // allocation.
        unsafe { (self.lines.as_ptr() as *const f32).add(row * self.stride) }
    }

    #[inline]
    pub fn row(&self, row: usize) -> &[f32] {
        let s = row * self.stride;
        // SAFETY: Line is repr(C) over [f32; LANE], so the buffer is a valid
        // contiguous f32 slice; the range is bounds-checked against it.
        let all = unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const f32, self.lines.len() * LANE) };
        &all[s..s + self.stride]
    }

    #[inline]
    pub fn row_mut(&mut self, row: usize) -> &mut [f32] {
        let s = row * self.stride;
        // SAFETY: as in `row`.
        let all = unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut f32, self.lines.len() * LANE) };
        &mut all[s..s + self.stride]
    }

    /// Copies row `from` over row `to`.
    pub fn copy_row(&mut self, from: usize, to: usize) {
        let w = self.stride / LANE;
        self.lines.copy_within(from * w..from * w + w, to * w);
    }

    pub fn heap_bytes(&self) -> usize {
        self.lines.capacity() * std::mem::size_of::<Line>()
    }

    pub fn shrink_to_fit(&mut self) {
        self.lines.shrink_to_fit();
    }
}

/// Asks Linux to back a large buffer with transparent huge pages (where THP
/// is in `madvise` mode, the common default). Graph search reads vectors and
/// adjacency lists at random across tens of megabytes; with 4 KiB pages
/// nearly every one of those reads also misses the TLB, and the page walks
/// cost about as much as the reads themselves. Only advice: failures are
/// ignored and other systems do nothing.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        const PAGE: usize = 4096;
        const MADV_HUGEPAGE: i32 = 14;
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < HUGE {
            return;
        }
        let start = (v.as_ptr() as usize).div_ceil(PAGE) * PAGE;
        let end = (v.as_ptr() as usize + bytes) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside the Vec's own allocation, and
            // MADV_HUGEPAGE changes only how its pages are backed, never
            // their contents.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Hasher for u32 keys: one multiply by a large odd constant spreads
/// sequential and clustered ids over the table. Ids come from the server,
/// not from untrusted clients, so flooding resistance is not needed and
/// SipHash would only cost time.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        // The high bits feed hashbrown's control bytes and the low bits pick
        // the bucket; a 64-bit multiply followed by a fold fills both.
        let h = (n as u64 ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

pub(crate) type IdMap = HashMap<u32, u32, BuildHasherDefault<IdHasher>>;

/// Approximate heap bytes of an `IdMap` (hashbrown: buckets are a power of
/// two at 7/8 load, each an 8-byte entry plus one control byte).
pub(crate) fn idmap_bytes(m: &IdMap) -> usize {
    let cap = m.capacity();
    if cap == 0 {
        return 0;
    }
    let buckets = (cap * 8 / 7).next_power_of_two().max(4);
    buckets * (std::mem::size_of::<(u32, u32)>() + 1) + 16
}

/// A (distance, key) pair ordered by distance, then key, using a total order
/// on f32 so a stray NaN can never make the heaps panic or misbehave.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scored {
    pub d: f32,
    pub key: u32,
}

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Scored {
    /// (distance, key) packed so that integer order is the pair's order:
    /// the f32's bits mapped to an order-preserving u32 (the usual total
    /// order trick: flip all bits of negatives, the sign bit of the rest)
    /// above the key. The heaps compare these with one instruction instead
    /// of a float compare and a tie branch.
    #[inline(always)]
    fn packed(&self) -> u64 {
        let b = self.d.to_bits();
        let ord = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
        ((ord as u64) << 32) | self.key as u64
    }
}

impl Ord for Scored {
    #[inline(always)]
    fn cmp(&self, o: &Self) -> Ordering {
        self.packed().cmp(&o.packed())
    }
}

/// Keeps the k smallest `Scored` values seen: a max-heap whose top is the
/// current k-th best, so most candidates are rejected with one comparison.
pub(crate) struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<Scored>,
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        TopK { k, heap: std::collections::BinaryHeap::with_capacity(k.min(1 << 16) + 1) }
    }

    /// Distance a candidate must beat to enter (infinity until full).
    #[inline(always)]
    pub fn bound(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |s| s.d)
        }
    }

    #[inline]
    pub fn push(&mut self, s: Scored) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(s);
        } else if let Some(mut top) = self.heap.peek_mut() {
            if s < *top {
                *top = s;
            }
        }
    }

    /// Results in ascending order.
    pub fn into_sorted(self) -> Vec<Scored> {
        self.heap.into_sorted_vec()
    }
}

/// Generation-stamped visited marks: starting a search bumps the generation
/// instead of clearing the array, so a search costs nothing proportional to
/// the index size.
pub(crate) struct Visited {
    marks: Vec<u32>,
    gen: u32,
}

impl Visited {
    const fn new() -> Visited {
        Visited { marks: Vec::new(), gen: 0 }
    }

    /// Starts a new search over `n` slots.
    pub fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.gen = 1;
        }
    }

    /// Marks `i`; returns true if it was already marked in this search.
    #[inline(always)]
    pub fn test_and_set(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.gen {
            true
        } else {
            *m = self.gen;
            false
        }
    }
}

thread_local! {
    /// One visited set per thread, shared by every index: searches on the
    /// libuv pool run concurrently under a read lock, and each worker thread
    /// keeps its own marks instead of allocating per query.
    static VISITED: RefCell<Visited> = const { RefCell::new(Visited::new()) };
}

/// Runs `f` with this thread's visited set, reset for `n` slots. If the set
/// is already borrowed (only possible through re-entrant use), a fresh one
/// is used instead of panicking.
pub(crate) fn with_visited<R>(n: usize, f: impl FnOnce(&mut Visited) -> R) -> R {
    let mut f = Some(f);
    let r = VISITED.with(|cell| {
        if let Ok(mut v) = cell.try_borrow_mut() {
            v.reset(n);
            let f = f.take().expect("closure used once");
            Some(f(&mut v))
        } else {
            None
        }
    });
    match r {
        Some(r) => r,
        None => {
            let mut v = Visited::new();
            v.reset(n);
            (f.take().expect("closure used once"))(&mut v)
        }
    }
}

/// Bit set over slot numbers, used to apply caller filters.
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub fn new(n: usize) -> BitSet {
        BitSet { words: vec![0; n.div_ceil(64)] }
    }

    /// Sets bit `i`; returns true if it was newly set.
    #[inline]
    pub fn insert(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        let old = self.words[w];
        self.words[w] = old | (1 << b);
        old & (1 << b) == 0
    }

    #[inline(always)]
    pub fn contains(&self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }
}

/// splitmix64: tiny, seedable, and good enough for HNSW level draws; the
/// state is saved with the index so a loaded index keeps drawing the same
/// sequence as the original would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    pub fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// Writer for the saved format: little-endian scalars appended to a Vec.
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Writer {
        Writer { buf: Vec::with_capacity(n) }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn u32s(&mut self, v: &[u32]) {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Bounds-checked reader: every read returns `Corrupt` past the end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(VectorError::corrupt(format!("truncated in {what}")));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads `n` u32 values; the byte count is checked before allocating,
    /// so a corrupt length cannot trigger a huge allocation.
    pub fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>> {
        let len = n.checked_mul(4).ok_or_else(|| VectorError::corrupt(format!("length overflow in {what}")))?;
        let b = self.bytes(len, what)?;
        Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Appends `n` u32 values to `out` (whose allocation the caller may
    /// have prepared, e.g. advised for huge pages).
    pub fn u32s_into(&mut self, out: &mut Vec<u32>, n: usize, what: &str) -> Result<()> {
        let len = n.checked_mul(4).ok_or_else(|| VectorError::corrupt(format!("length overflow in {what}")))?;
        let b = self.bytes(len, what)?;
        out.extend(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        Ok(())
    }

    pub fn f32_into(&mut self, out: &mut [f32], what: &str) -> Result<()> {
        let b = self.bytes(out.len() * 4, what)?;
        for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}

/// 64-bit checksum over the saved bytes (word-at-a-time multiply-xor with a
/// final avalanche). It only needs to catch accidental damage such as
/// truncated files or flipped bits; structure is validated separately.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    const P: u64 = 0x0000_0100_0000_01B3;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(P).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(P).rotate_left(29);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_keeps_smallest_in_order() {
        let mut t = TopK::new(3);
        for (i, d) in [5.0, 1.0, 4.0, 2.0, 3.0, 0.5].iter().enumerate() {
            t.push(Scored { d: *d, key: i as u32 });
        }
        let v: Vec<f32> = t.into_sorted().iter().map(|s| s.d).collect();
        assert_eq!(v, vec![0.5, 1.0, 2.0]);
        let mut z = TopK::new(0);
        z.push(Scored { d: 1.0, key: 0 });
        assert!(z.into_sorted().is_empty());
    }

    #[test]
    fn visited_generations_isolate_searches() {
        let mut v = Visited::new();
        v.reset(10);
        assert!(!v.test_and_set(3));
        assert!(v.test_and_set(3));
        v.reset(20);
        assert!(!v.test_and_set(3));
        assert!(!v.test_and_set(19));
        v.gen = u32::MAX;
        v.reset(20);
        assert!(!v.test_and_set(19), "wraparound clears stale marks");
    }

    #[test]
    fn rows_are_aligned_and_padded() {
        let mut r = Rows::new(stride_for(3));
        assert_eq!(r.stride(), 16);
        let a = r.push_zeroed();
        let b = r.push_zeroed();
        r.row_mut(b)[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.ptr(a) as usize % 64, 0);
        assert_eq!(r.ptr(b) as usize % 64, 0);
        r.copy_row(b, a);
        assert_eq!(&r.row(a)[..4], &[1.0, 2.0, 3.0, 0.0]);
        r.truncate(1);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn checksum_changes_with_any_byte() {
        let base: Vec<u8> = (0..100u8).collect();
        let h = checksum(&base);
        for i in 0..base.len() {
            let mut b = base.clone();
            b[i] ^= 0x80;
            assert_ne!(checksum(&b), h, "byte {i}");
        }
        assert_ne!(checksum(&base[..99]), h);
    }

    #[test]
    fn reader_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("x").unwrap(), 0x0201);
        assert_eq!(r.u32("y").unwrap_err().code(), "corrupt");
        assert_eq!(r.u32s(usize::MAX, "z").unwrap_err().code(), "corrupt");
    }

    #[test]
    fn prepare_normalises_for_cosine_only() {
        let mut out = vec![9.0; 16];
        prepare_into(&[3.0, 4.0], Metric::Cosine, &mut out);
        assert!((out[0] - 0.6).abs() < 1e-7 && (out[1] - 0.8).abs() < 1e-7);
        assert!(out[2..].iter().all(|x| *x == 0.0));
        prepare_into(&[3.0, 4.0], Metric::L2, &mut out);
        assert_eq!(&out[..2], &[3.0, 4.0]);
        prepare_into(&[0.0, 0.0], Metric::Cosine, &mut out);
        assert_eq!(&out[..2], &[0.0, 0.0]);
    }
}
