//! Exact search over contiguous storage.
//!
//! Rows are kept dense (removal moves the last row into the hole), so a
//! search is one linear pass over memory that the hardware prefetcher
//! streams, with a bounded heap that rejects almost every row with a single
//! comparison.

use super::common::{
    check_vector, idmap_bytes, prepare_into, stride_for, BitSet, DistFn, Hit, IdMap, Metric, Reader, Result, Rows,
    Scored, TopK, VectorError, Writer, MAX_DIM, MAX_SLOTS,
};
use super::distance::Kernels;

pub struct Flat {
    dim: usize,
    metric: Metric,
    dist: DistFn,
    rows: Rows,
    /// Caller id of each row.
    ids: Vec<u32>,
    /// Caller id -> row.
    rows_of: IdMap,
}

/// Scans `slots` (or every row when `None`) and returns the k best as
/// (distance, caller id) pairs, ascending, ties broken by id. Shared with
/// the HNSW index for its exact fallbacks.
pub(crate) fn scan<I: Iterator<Item = u32>>(
    rows: &Rows,
    dist: &DistFn,
    q: &[f32],
    k: usize,
    slots: I,
    id_of: impl Fn(u32) -> u32,
) -> Vec<Scored> {
    let mut top = TopK::new(k);
    let mut bound = f32::INFINITY;
    let n = rows.stride();
    for s in slots {
        // SAFETY: the caller's slots are rows of `rows`; `q` is a full
        // padded row (`stride` floats).
        let d = unsafe { dist.eval(q.as_ptr(), rows.ptr(s as usize), n) };
        if d <= bound {
            top.push(Scored { d, key: id_of(s) });
            bound = top.bound();
        }
    }
    top.into_sorted()
}

impl Flat {
    pub fn new(dim: usize, metric: Metric) -> Result<Flat> {
        Flat::with_kernels(dim, metric, Kernels::for_dim(dim))
    }

    pub fn with_kernels(dim: usize, metric: Metric, k: Kernels) -> Result<Flat> {
        if dim == 0 || dim > MAX_DIM {
            return Err(VectorError::BadParam(format!("dim must be an integer in 1..={MAX_DIM}, got {dim}")));
        }
        Ok(Flat {
            dim,
            metric,
            dist: DistFn::new(metric, &k),
            rows: Rows::new(stride_for(dim)),
            ids: Vec::new(),
            rows_of: IdMap::default(),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.rows_of.contains_key(&id)
    }

    pub fn reserve(&mut self, n: usize) {
        self.rows.reserve(n);
        self.ids.reserve(n);
        self.rows_of.reserve(n);
    }

    /// Adds or replaces `id`.
    pub fn add(&mut self, id: u32, v: &[f32]) -> Result<()> {
        check_vector(v, self.dim, "vector")?;
        self.put(id, v)
    }

    /// Adds many vectors (`vectors` is `ids.len()` rows of `dim`). Every row
    /// is checked before any is stored, so a bad batch changes nothing.
    pub fn add_batch(&mut self, ids: &[u32], vectors: &[f32]) -> Result<()> {
        check_batch(ids, vectors, self.dim)?;
        self.reserve(ids.len());
        for (i, id) in ids.iter().enumerate() {
            self.put(*id, &vectors[i * self.dim..(i + 1) * self.dim])?;
        }
        Ok(())
    }

    fn put(&mut self, id: u32, v: &[f32]) -> Result<()> {
        let row = match self.rows_of.get(&id) {
            Some(&r) => r as usize,
            None => {
                if self.ids.len() >= MAX_SLOTS {
                    return Err(VectorError::Capacity);
                }
                let r = self.rows.push_zeroed();
                self.ids.push(id);
                self.rows_of.insert(id, r as u32);
                r
            }
        };
        prepare_into(v, self.metric, self.rows.row_mut(row));
        Ok(())
    }

    /// Removes `id`; false if it was not present.
    pub fn remove(&mut self, id: u32) -> bool {
        let Some(row) = self.rows_of.remove(&id) else { return false };
        let row = row as usize;
        let last = self.ids.len() - 1;
        if row != last {
            self.rows.copy_row(last, row);
            let moved = self.ids[last];
            self.ids[row] = moved;
            self.rows_of.insert(moved, row as u32);
        }
        self.ids.pop();
        self.rows.truncate(last);
        true
    }

    /// Prepares a query: checked, normalised for cosine, padded to a row.
    fn query(&self, q: &[f32]) -> Result<Vec<f32>> {
        check_vector(q, self.dim, "query")?;
        let mut buf = vec![0f32; self.rows.stride()];
        prepare_into(q, self.metric, &mut buf);
        Ok(buf)
    }

    /// The k nearest vectors, nearest first. With `filter`, only ids in it
    /// are considered (unknown ids in the filter are ignored).
    pub fn search(&self, q: &[f32], k: usize, filter: Option<&[u32]>) -> Result<Vec<Hit>> {
        let q = self.query(q)?;
        let k = k.min(self.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let ids = &self.ids;
        let id_of = |s: u32| ids[s as usize];
        let found = match filter {
            None => scan(&self.rows, &self.dist, &q, k, 0..self.len() as u32, id_of),
            Some(allowed) => {
                let slots = self.filter_slots(allowed);
                scan(&self.rows, &self.dist, &q, k, slots.into_iter(), id_of)
            }
        };
        Ok(found.into_iter().map(|s| Hit { id: s.key, distance: s.d }).collect())
    }

    /// Rows of the allowed ids, deduplicated and in memory order.
    fn filter_slots(&self, allowed: &[u32]) -> Vec<u32> {
        let mut seen = BitSet::new(self.len());
        let mut slots: Vec<u32> =
            allowed.iter().filter_map(|id| self.rows_of.get(id).copied()).filter(|s| seen.insert(*s)).collect();
        slots.sort_unstable();
        slots
    }

    /// Stored (normalised, for cosine) vector of `id`.
    pub fn get(&self, id: u32) -> Option<Vec<f32>> {
        self.rows_of.get(&id).map(|&r| self.rows.row(r as usize)[..self.dim].to_vec())
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.rows.heap_bytes() + self.ids.capacity() * 4 + idmap_bytes(&self.rows_of)
    }

    pub fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.rows_of.shrink_to_fit();
    }

    pub(crate) fn write_body(&self, w: &mut Writer) {
        w.u32(self.len() as u32);
        w.u32s(&self.ids);
        for r in 0..self.len() {
            w.f32s(&self.rows.row(r)[..self.dim]);
        }
    }

    pub(crate) fn read_body(r: &mut Reader, dim: usize, metric: Metric) -> Result<Flat> {
        let count = r.u32("vector count")? as usize;
        // Checked against the bytes actually present before allocating.
        if count.checked_mul(4 + dim * 4).is_none_or(|need| need > r.remaining()) {
            return Err(VectorError::corrupt("vector count exceeds the data present"));
        }
        let ids = r.u32s(count, "ids")?;
        let mut f = Flat::new(dim, metric)?;
        f.reserve(count);
        for (i, id) in ids.iter().enumerate() {
            if f.rows_of.insert(*id, i as u32).is_some() {
                return Err(VectorError::corrupt(format!("id {id} appears twice")));
            }
            let row = f.rows.push_zeroed();
            r.f32_into(&mut f.rows.row_mut(row)[..dim], "vectors")?;
            if !f.rows.row(row).iter().all(|x| x.is_finite()) {
                return Err(VectorError::corrupt("a stored vector is not finite"));
            }
        }
        f.ids = ids;
        Ok(f)
    }
}

/// Shape and value checks for a batch.
pub(crate) fn check_batch(ids: &[u32], vectors: &[f32], dim: usize) -> Result<()> {
    if ids.len().checked_mul(dim) != Some(vectors.len()) {
        return Err(VectorError::DimMismatch { what: "vectors", expected: ids.len() * dim, got: vectors.len() });
    }
    if !vectors.iter().all(|x| x.is_finite()) {
        return Err(VectorError::NonFinite { what: "vectors" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::distance::Isa;
    use super::*;

    fn naive(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
        match metric {
            Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
            Metric::InnerProduct => 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
            Metric::Cosine => {
                let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (n(a) * n(b))
            }
        }
    }

    fn lcg(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn known_small_set_for_each_metric() {
        let pts: [(u32, [f32; 2]); 4] = [(10, [1.0, 0.0]), (11, [0.0, 1.0]), (12, [-1.0, 0.0]), (13, [2.0, 2.0])];
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut f = Flat::new(2, metric).unwrap();
            for (id, v) in pts {
                f.add(id, &v).unwrap();
            }
            let q = [1.0, 0.5];
            let got = f.search(&q, 4, None).unwrap();
            let mut want: Vec<(f32, u32)> = pts.iter().map(|(id, v)| (naive(metric, &q, v), *id)).collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            assert_eq!(got.iter().map(|h| h.id).collect::<Vec<_>>(), want.iter().map(|w| w.1).collect::<Vec<_>>(), "{metric:?}");
            for (h, w) in got.iter().zip(&want) {
                assert!((h.distance - w.0).abs() < 1e-6, "{metric:?} {} vs {}", h.distance, w.0);
            }
        }
    }

    #[test]
    fn remove_replace_filter_and_k_above_size() {
        let mut f = Flat::new(3, Metric::L2).unwrap();
        for i in 0..10u32 {
            f.add(i, &[i as f32, 0.0, 0.0]).unwrap();
        }
        assert!(f.remove(0));
        assert!(!f.remove(0));
        assert_eq!(f.len(), 9);
        let ids: Vec<u32> = f.search(&[0.0, 0.0, 0.0], 3, None).unwrap().iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        f.add(9, &[0.1, 0.0, 0.0]).unwrap();
        assert_eq!(f.len(), 9, "re-adding replaces");
        assert_eq!(f.search(&[0.0, 0.0, 0.0], 1, None).unwrap()[0].id, 9);
        let filt = [5, 7, 7, 1000];
        let ids: Vec<u32> = f.search(&[0.0, 0.0, 0.0], 5, Some(&filt)).unwrap().iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![5, 7], "filter is deduplicated and ignores unknown ids");
        assert_eq!(f.search(&[0.0, 0.0, 0.0], 100, None).unwrap().len(), 9);
        assert!(f.search(&[0.0, 0.0, 0.0], 0, None).unwrap().is_empty());
        assert!(f.search(&[0.0, 0.0, 0.0], 3, Some(&[])).unwrap().is_empty());
    }

    #[test]
    fn errors_have_codes() {
        let mut f = Flat::new(3, Metric::Cosine).unwrap();
        assert_eq!(f.add(1, &[1.0, 2.0]).unwrap_err().code(), "dim_mismatch");
        assert_eq!(f.add(1, &[1.0, f32::NAN, 0.0]).unwrap_err().code(), "non_finite");
        assert_eq!(f.search(&[1.0; 4], 1, None).unwrap_err().code(), "dim_mismatch");
        assert_eq!(f.add_batch(&[1, 2], &[0.0; 5]).unwrap_err().code(), "dim_mismatch");
        assert_eq!(f.add_batch(&[1, 2], &[0.0, 0.0, 0.0, 0.0, 0.0, f32::INFINITY]).unwrap_err().code(), "non_finite");
        assert_eq!(f.len(), 0, "a failed batch adds nothing");
        assert_eq!(Flat::new(0, Metric::L2).err().unwrap().code(), "bad_param");
    }

    #[test]
    fn matches_brute_force_with_every_kernel() {
        let dim = 37;
        let n = 500;
        let data = lcg(1, n * dim);
        let queries = lcg(2, 20 * dim);
        for isa in Isa::available() {
            for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
                let mut f = Flat::with_kernels(dim, metric, Kernels::for_isa(isa)).unwrap();
                let ids: Vec<u32> = (0..n as u32).map(|i| i * 3 + 1).collect();
                f.add_batch(&ids, &data).unwrap();
                for q in queries.chunks(dim) {
                    let got = f.search(q, 10, None).unwrap();
                    let mut want: Vec<(f32, u32)> =
                        (0..n).map(|i| (naive(metric, q, &data[i * dim..(i + 1) * dim]), ids[i])).collect();
                    want.sort_by(|a, b| a.0.total_cmp(&b.0));
                    for (j, h) in got.iter().enumerate() {
                        // Compare distances (ids may swap on near-ties).
                        assert!((h.distance - want[j].0).abs() < 1e-4, "{isa:?} {metric:?} rank {j}");
                    }
                }
            }
        }
    }
}
