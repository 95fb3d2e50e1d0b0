//! Vector similarity search: exact (flat) and approximate (HNSW) indexes
//! over f32 vectors with caller-chosen u32 ids.
//!
//! Saved format (all little-endian), version 1:
//!
//! ```text
//! magic    8 bytes  "NPCDVEC\0"
//! version  u32      1
//! kind     u8       0 flat, 1 hnsw
//! metric   u8       0 cosine, 1 ip, 2 l2
//! reserved u16      0
//! dim      u32
//! body              Flat::write_body / Hnsw::write_body
//! checksum u64      over every byte before it
//! ```
//!
//! Vectors are stored as the index holds them (normalised for cosine), so
//! loading is a copy plus validation. Loading checks the checksum and then
//! every structural invariant, returning `Corrupt` rather than panicking, so
//! damaged or hostile bytes cannot crash the process.

mod common;
pub mod distance;
mod flat;
mod hnsw;
mod perf;

pub use common::{Hit, Metric, Result, VectorError, MAX_DIM};
pub use flat::Flat;
pub use hnsw::{Hnsw, HnswParams, MAX_EF, MAX_LEVEL, MAX_M};

use common::{checksum, Reader, Writer};

pub const MAGIC: &[u8; 8] = b"NPCDVEC\0";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Flat,
    Hnsw,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "flat" => Some(Kind::Flat),
            "hnsw" => Some(Kind::Hnsw),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Flat => "flat",
            Kind::Hnsw => "hnsw",
        }
    }
}

/// Either index behind one interface, as the binding exposes it.
pub enum Index {
    Flat(Flat),
    Hnsw(Hnsw),
}

impl Index {
    pub fn new(kind: Kind, dim: usize, metric: Metric, params: HnswParams) -> Result<Index> {
        Ok(match kind {
            Kind::Flat => Index::Flat(Flat::new(dim, metric)?),
            Kind::Hnsw => Index::Hnsw(Hnsw::new(dim, metric, params)?),
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Index::Flat(_) => Kind::Flat,
            Index::Hnsw(_) => Kind::Hnsw,
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            Index::Flat(f) => f.dim(),
            Index::Hnsw(h) => h.dim(),
        }
    }

    pub fn metric(&self) -> Metric {
        match self {
            Index::Flat(f) => f.metric(),
            Index::Hnsw(h) => h.metric(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Index::Flat(f) => f.len(),
            Index::Hnsw(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: u32) -> bool {
        match self {
            Index::Flat(f) => f.contains(id),
            Index::Hnsw(h) => h.contains(id),
        }
    }

    pub fn add(&mut self, id: u32, v: &[f32]) -> Result<()> {
        match self {
            Index::Flat(f) => f.add(id, v),
            Index::Hnsw(h) => h.add(id, v),
        }
    }

    pub fn add_batch(&mut self, ids: &[u32], vectors: &[f32]) -> Result<()> {
        match self {
            Index::Flat(f) => f.add_batch(ids, vectors),
            Index::Hnsw(h) => h.add_batch(ids, vectors),
        }
    }

    pub fn remove(&mut self, id: u32) -> bool {
        match self {
            Index::Flat(f) => f.remove(id),
            Index::Hnsw(h) => h.remove(id),
        }
    }

    pub fn search(&self, q: &[f32], k: usize, filter: Option<&[u32]>) -> Result<Vec<Hit>> {
        match self {
            Index::Flat(f) => f.search(q, k, filter),
            Index::Hnsw(h) => h.search(q, k, filter),
        }
    }

    /// HNSW beam width; `None` for the flat index, which has none.
    pub fn ef(&self) -> Option<usize> {
        match self {
            Index::Flat(_) => None,
            Index::Hnsw(h) => Some(h.ef()),
        }
    }

    /// Sets the HNSW beam width. The flat index validates and ignores it,
    /// so callers can treat both kinds alike.
    pub fn set_ef(&mut self, ef: usize) -> Result<()> {
        match self {
            Index::Flat(_) => hnsw::check_ef("ef", ef),
            Index::Hnsw(h) => h.set_ef(ef),
        }
    }

    pub fn get(&self, id: u32) -> Option<Vec<f32>> {
        match self {
            Index::Flat(f) => f.get(id),
            Index::Hnsw(h) => h.get(id),
        }
    }

    /// Heap bytes held by the index (capacities, not just lengths).
    pub fn memory_bytes(&self) -> usize {
        match self {
            Index::Flat(f) => f.memory_bytes(),
            Index::Hnsw(h) => h.memory_bytes(),
        }
    }

    pub fn shrink_to_fit(&mut self) {
        match self {
            Index::Flat(f) => f.shrink_to_fit(),
            Index::Hnsw(h) => h.shrink_to_fit(),
        }
    }

    pub fn save(&self) -> Vec<u8> {
        let dim = self.dim();
        let approx = match self {
            Index::Flat(f) => f.len() * (dim + 1) * 4,
            Index::Hnsw(h) => h.memory_bytes(),
        };
        let mut w = Writer::with_capacity(approx + 64);
        w.buf.extend_from_slice(MAGIC);
        w.u32(FORMAT_VERSION);
        w.u8(match self.kind() {
            Kind::Flat => 0,
            Kind::Hnsw => 1,
        });
        w.u8(self.metric().to_byte());
        w.u16(0);
        w.u32(dim as u32);
        match self {
            Index::Flat(f) => f.write_body(&mut w),
            Index::Hnsw(h) => h.write_body(&mut w),
        }
        let sum = checksum(&w.buf);
        w.u64(sum);
        w.buf
    }

    pub fn load(bytes: &[u8]) -> Result<Index> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(VectorError::corrupt("not a saved vector index (bad magic)"));
        }
        let mut r = Reader::new(bytes);
        r.bytes(8, "magic")?;
        let version = r.u32("version")?;
        if version != FORMAT_VERSION {
            return Err(VectorError::UnsupportedVersion(version));
        }
        if bytes.len() < 8 + 4 + 4 + 4 + 8 {
            return Err(VectorError::corrupt("truncated header"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let mut want = [0u8; 8];
        want.copy_from_slice(tail);
        if checksum(body) != u64::from_le_bytes(want) {
            return Err(VectorError::corrupt("checksum mismatch (truncated or damaged)"));
        }
        let mut r = Reader::new(body);
        r.bytes(12, "header")?;
        let kind = r.u8("kind")?;
        let metric = Metric::from_byte(r.u8("metric")?).ok_or_else(|| VectorError::corrupt("unknown metric"))?;
        if r.u16("reserved")? != 0 {
            return Err(VectorError::corrupt("reserved header bits set"));
        }
        let dim = r.u32("dim")? as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(VectorError::corrupt("dim out of range"));
        }
        let index = match kind {
            0 => Index::Flat(Flat::read_body(&mut r, dim, metric)?),
            1 => Index::Hnsw(Hnsw::read_body(&mut r, dim, metric)?),
            _ => return Err(VectorError::corrupt("unknown index kind")),
        };
        if r.remaining() != 0 {
            return Err(VectorError::corrupt("trailing bytes after the index"));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::common::SplitMix64;
    use super::*;

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64(seed);
        (0..n * dim).map(|_| r.next_unit() as f32 * 2.0 - 1.0).collect()
    }

    fn sample_indexes() -> Vec<Index> {
        let mut out = Vec::new();
        for kind in [Kind::Flat, Kind::Hnsw] {
            for metric in [Metric::Cosine, Metric::InnerProduct, Metric::L2] {
                let p = HnswParams { m: 6, ef_construction: 40, ef: 20, seed: 9 };
                let mut ix = Index::new(kind, 13, metric, p).unwrap();
                let ids: Vec<u32> = (0..300).map(|i| i * 7).collect();
                ix.add_batch(&ids, &data(300, 13, 1)).unwrap();
                for id in (0..300).step_by(5) {
                    ix.remove(id * 7);
                }
                out.push(ix);
            }
        }
        out
    }

    #[test]
    fn save_load_round_trip_gives_identical_results() {
        let queries = data(20, 13, 2);
        for ix in sample_indexes() {
            let bytes = ix.save();
            let back = Index::load(&bytes).unwrap();
            assert_eq!(back.kind(), ix.kind());
            assert_eq!(back.metric(), ix.metric());
            assert_eq!(back.dim(), 13);
            assert_eq!(back.len(), ix.len());
            assert_eq!(back.ef(), ix.ef());
            for q in queries.chunks(13) {
                assert_eq!(back.search(q, 10, None).unwrap(), ix.search(q, 10, None).unwrap());
            }
            assert_eq!(back.save(), bytes, "saving a loaded index reproduces the bytes");
        }
    }

    #[test]
    fn loaded_hnsw_continues_like_the_original() {
        let p = HnswParams { m: 6, ef_construction: 40, ef: 20, seed: 9 };
        let mut a = Index::new(Kind::Hnsw, 8, Metric::L2, p).unwrap();
        let d = data(400, 8, 3);
        let ids: Vec<u32> = (0..200).collect();
        a.add_batch(&ids, &d[..200 * 8]).unwrap();
        let mut b = Index::load(&a.save()).unwrap();
        let ids2: Vec<u32> = (200..400).collect();
        a.add_batch(&ids2, &d[200 * 8..]).unwrap();
        b.add_batch(&ids2, &d[200 * 8..]).unwrap();
        assert_eq!(a.save(), b.save());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_not_a_panic() {
        for ix in sample_indexes().into_iter().step_by(2) {
            let bytes = ix.save();
            for len in 0..bytes.len() {
                let e = Index::load(&bytes[..len]).err().expect("truncated bytes must fail");
                assert!(matches!(e.code(), "corrupt" | "unsupported_version"), "{len}: {e}");
            }
            let mut r = SplitMix64(5);
            for _ in 0..300 {
                let mut b = bytes.clone();
                let i = (r.next_u64() % b.len() as u64) as usize;
                b[i] ^= 1 << (r.next_u64() % 8);
                assert!(Index::load(&b).is_err(), "flip at {i}");
            }
        }
    }

    /// Structural validation must hold even when the checksum is right, as
    /// for bytes crafted on purpose.
    #[test]
    fn structural_damage_with_a_valid_checksum_is_rejected() {
        let ix = &sample_indexes()[3]; // hnsw, cosine
        let bytes = ix.save();
        let body_len = bytes.len() - 8;
        let reseal = |mut b: Vec<u8>| {
            let n = b.len() - 8;
            let s = checksum(&b[..n]);
            b[n..].copy_from_slice(&s.to_le_bytes());
            b
        };
        let mut r = SplitMix64(17);
        let mut rejected = 0;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            let i = 8 + (r.next_u64() % (body_len as u64 - 8)) as usize;
            b[i] = r.next_u64() as u8;
            // Must never panic; may legitimately load when the byte was in a
            // vector or an id.
            if let Ok(ix) = Index::load(&reseal(b)) {
                let _ = ix.search(&[0.5; 13], 5, None);
            } else {
                rejected += 1;
            }
        }
        assert!(rejected > 0);
        // Specific fields.
        let mut b = bytes.clone();
        b[12] = 7; // kind
        assert_eq!(Index::load(&reseal(b)).err().unwrap().code(), "corrupt");
        let mut b = bytes.clone();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Index::load(&b).err().unwrap().code(), "unsupported_version");
        let mut b = bytes.clone();
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes()); // dim
        assert_eq!(Index::load(&reseal(b)).err().unwrap().code(), "corrupt");
        assert_eq!(Index::load(b"NPCDVEC\0").err().unwrap().code(), "corrupt");
        assert_eq!(Index::load(b"hello world, this is not an index").err().unwrap().code(), "corrupt");
    }

    #[test]
    fn empty_indexes_round_trip() {
        for kind in [Kind::Flat, Kind::Hnsw] {
            let ix = Index::new(kind, 4, Metric::L2, HnswParams::default()).unwrap();
            let back = Index::load(&ix.save()).unwrap();
            assert_eq!(back.len(), 0);
            assert!(back.search(&[0.0; 4], 3, None).unwrap().is_empty());
        }
    }

    #[test]
    fn memory_bytes_tracks_contents() {
        for kind in [Kind::Flat, Kind::Hnsw] {
            let mut ix = Index::new(kind, 64, Metric::Cosine, HnswParams::default()).unwrap();
            let empty = ix.memory_bytes();
            let ids: Vec<u32> = (0..1000).collect();
            ix.add_batch(&ids, &data(1000, 64, 4)).unwrap();
            let full = ix.memory_bytes();
            assert!(full >= empty + 1000 * 64 * 4, "{kind:?}: {full}");
            assert!(full < 1000 * 64 * 4 * 4, "{kind:?}: {full}");
        }
    }

    #[test]
    fn error_codes_are_stable() {
        let cases: Vec<(VectorError, &str)> = vec![
            (VectorError::DimMismatch { what: "q", expected: 1, got: 2 }, "dim_mismatch"),
            (VectorError::BadParam("x".into()), "bad_param"),
            (VectorError::NonFinite { what: "q" }, "non_finite"),
            (VectorError::Corrupt("x".into()), "corrupt"),
            (VectorError::UnsupportedVersion(9), "unsupported_version"),
            (VectorError::Capacity, "capacity"),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code);
            assert!(!e.to_string().is_empty());
        }
    }
}
