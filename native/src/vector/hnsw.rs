//! Hierarchical navigable small world graph (Malkov & Yashunin).
//!
//! Layout, chosen for the search loop at level 0 where nearly all the time
//! goes:
//! * vectors live in one 64-byte aligned, zero-padded array (`Rows`);
//! * level-0 adjacency is one flat `u32` array with a fixed stride of
//!   `1 + 2M` per node (count, then neighbours), so reading a node's list is
//!   one contiguous load with no pointer chasing;
//! * the few nodes above level 0 (about 1/M of them) keep their upper lists
//!   in a second pool addressed by a per-node offset;
//! * the visited set is a per-thread, generation-stamped array (`Visited`).
//!
//! Removal marks a node deleted: it stays in the graph so searches still
//! pass through it, but it is never returned. Later insertions reuse deleted
//! slots (keeping the slot's level), so an index that sees steady
//! replacements does not grow without bound.

use std::collections::{BTreeSet, BinaryHeap};
use std::cmp::Reverse;

use super::common::{
    advise_huge_pages, check_vector, idmap_bytes, prepare_into, stride_for, with_visited, BitSet, DistFn, Hit, IdMap, Metric, Reader,
    Result, Rows, Scored, SplitMix64, VectorError, Visited, Writer, MAX_DIM, MAX_SLOTS,
};
use super::distance::{prefetch, Kernels};
use super::flat::{check_batch, scan};

const NONE: u32 = u32::MAX;
/// Levels are drawn from an exponential distribution; capping them bounds
/// the per-node upper storage whatever the RNG produces.
pub const MAX_LEVEL: usize = 15;
pub const MAX_M: usize = 256;
pub const MAX_EF: usize = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours per node on upper levels (2M on level 0).
    pub m: usize,
    pub ef_construction: usize,
    /// Search beam width (raised to k when k is larger).
    pub ef: usize,
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construction: 200, ef: 64, seed: 100 }
    }
}

impl HnswParams {
    pub fn validate(&self) -> Result<()> {
        if self.m < 2 || self.m > MAX_M {
            return Err(VectorError::BadParam(format!("m must be an integer in 2..={MAX_M}, got {}", self.m)));
        }
        check_ef("efConstruction", self.ef_construction)?;
        check_ef("ef", self.ef)
    }
}

pub fn check_ef(name: &str, ef: usize) -> Result<()> {
    if ef == 0 || ef > MAX_EF {
        return Err(VectorError::BadParam(format!("{name} must be an integer in 1..={MAX_EF}, got {ef}")));
    }
    Ok(())
}

pub struct Hnsw {
    dim: usize,
    metric: Metric,
    dist: DistFn,
    params: HnswParams,
    rng: SplitMix64,
    /// 1 / ln(M): scale of the level distribution.
    level_mult: f64,
    rows: Rows,
    /// `(1 + 2M)` u32 per slot: neighbour count, then neighbours.
    links0: Vec<u32>,
    /// Top level of each slot.
    levels: Vec<u8>,
    /// Offset of each slot's upper lists in `upper` (NONE for level 0).
    upper_off: Vec<u32>,
    /// `(1 + M)` u32 per upper level of each slot that has any.
    upper: Vec<u32>,
    /// Caller id of each slot (stale for deleted slots).
    ext: Vec<u32>,
    deleted: Vec<bool>,
    /// Deleted slots available for reuse, lowest first.
    free: BTreeSet<u32>,
    /// Caller id -> live slot.
    slots: IdMap,
    entry: u32,
    max_level: usize,
}

/// Search state reused across the layers of one insertion or query.
struct Heaps {
    cand: BinaryHeap<Reverse<Scored>>,
    res: BinaryHeap<Scored>,
}

impl Heaps {
    fn new(ef: usize) -> Heaps {
        Heaps { cand: BinaryHeap::with_capacity(ef * 4), res: BinaryHeap::with_capacity(ef + 1) }
    }
}

impl Hnsw {
    pub fn new(dim: usize, metric: Metric, params: HnswParams) -> Result<Hnsw> {
        Hnsw::with_kernels(dim, metric, params, Kernels::for_dim(dim))
    }

    pub fn with_kernels(dim: usize, metric: Metric, params: HnswParams, k: Kernels) -> Result<Hnsw> {
        if dim == 0 || dim > MAX_DIM {
            return Err(VectorError::BadParam(format!("dim must be an integer in 1..={MAX_DIM}, got {dim}")));
        }
        params.validate()?;
        Ok(Hnsw {
            dim,
            metric,
            dist: DistFn::new(metric, &k),
            params,
            rng: SplitMix64(params.seed),
            level_mult: 1.0 / (params.m as f64).ln(),
            rows: Rows::new(stride_for(dim)),
            links0: Vec::new(),
            levels: Vec::new(),
            upper_off: Vec::new(),
            upper: Vec::new(),
            ext: Vec::new(),
            deleted: Vec::new(),
            free: BTreeSet::new(),
            slots: IdMap::default(),
            entry: NONE,
            max_level: 0,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    pub fn ef(&self) -> usize {
        self.params.ef
    }

    pub fn set_ef(&mut self, ef: usize) -> Result<()> {
        check_ef("ef", ef)?;
        self.params.ef = ef;
        Ok(())
    }

    /// Live (not removed) vectors.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Graph nodes, including removed ones awaiting reuse.
    pub fn slot_count(&self) -> usize {
        self.ext.len()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.slots.contains_key(&id)
    }

    #[inline(always)]
    fn m0(&self) -> usize {
        2 * self.params.m
    }

    #[inline(always)]
    fn links(&self, slot: u32, level: usize) -> &[u32] {
        if level == 0 {
            let w = self.m0() + 1;
            let b = slot as usize * w;
            let c = self.links0[b] as usize;
            &self.links0[b + 1..b + 1 + c]
        } else {
            let w = self.params.m + 1;
            let b = self.upper_off[slot as usize] as usize + (level - 1) * w;
            let c = self.upper[b] as usize;
            &self.upper[b + 1..b + 1 + c]
        }
    }

    fn set_links(&mut self, slot: u32, level: usize, list: &[u32]) {
        let m0 = self.m0();
        let (buf, b, cap) = if level == 0 {
            (&mut self.links0, slot as usize * (m0 + 1), m0)
        } else {
            let w = self.params.m + 1;
            (&mut self.upper, self.upper_off[slot as usize] as usize + (level - 1) * w, self.params.m)
        };
        let n = list.len().min(cap);
        buf[b] = n as u32;
        buf[b + 1..b + 1 + n].copy_from_slice(&list[..n]);
    }

    #[inline(always)]
    fn d(&self, q: *const f32, slot: u32) -> f32 {
        // SAFETY: `q` points at a full padded row and `slot` is a valid row.
        unsafe { self.dist.eval(q, self.rows.ptr(slot as usize), self.rows.stride()) }
    }

    #[inline(always)]
    fn d_slots(&self, a: u32, b: u32) -> f32 {
        self.d(self.rows.ptr(a as usize), b)
    }

    fn random_level(&mut self) -> usize {
        let u = self.rng.next_unit();
        ((-u.ln() * self.level_mult) as usize).min(MAX_LEVEL)
    }

    pub fn reserve(&mut self, n: usize) {
        self.rows.reserve(n);
        self.links0.reserve(n * (self.m0() + 1));
        advise_huge_pages(&self.links0);
        self.levels.reserve(n);
        self.upper_off.reserve(n);
        self.ext.reserve(n);
        self.deleted.reserve(n);
        self.slots.reserve(n);
    }

    /// Adds `id`, or replaces its vector if present.
    pub fn add(&mut self, id: u32, v: &[f32]) -> Result<()> {
        check_vector(v, self.dim, "vector")?;
        self.put(id, v)
    }

    /// Adds many vectors; every row is checked first so a bad batch changes
    /// nothing.
    pub fn add_batch(&mut self, ids: &[u32], vectors: &[f32]) -> Result<()> {
        check_batch(ids, vectors, self.dim)?;
        self.reserve(ids.len().saturating_sub(self.free.len()));
        for (i, id) in ids.iter().enumerate() {
            self.put(*id, &vectors[i * self.dim..(i + 1) * self.dim])?;
        }
        Ok(())
    }

    fn put(&mut self, id: u32, v: &[f32]) -> Result<()> {
        let slot = self.take_slot()?;
        // Only now retire the old vector: if the id is replaced, the old
        // slot must not be handed out before this insertion has a slot, or a
        // failed allocation above would lose it.
        if let Some(old) = self.slots.remove(&id) {
            self.mark_deleted(old);
        }
        prepare_into(v, self.metric, self.rows.row_mut(slot as usize));
        self.ext[slot as usize] = id;
        self.deleted[slot as usize] = false;
        self.slots.insert(id, slot);
        self.insert(slot);
        Ok(())
    }

    /// A reusable deleted slot (never the entry point, which searches start
    /// from), or a new one.
    fn take_slot(&mut self) -> Result<u32> {
        let entry = self.entry;
        if let Some(&s) = self.free.iter().find(|&&s| s != entry) {
            self.free.remove(&s);
            // The old node's outgoing lists are dropped; its level is kept
            // because other nodes may link to it on those levels.
            for l in 0..=self.levels[s as usize] as usize {
                self.set_links(s, l, &[]);
            }
            return Ok(s);
        }
        if self.ext.len() >= MAX_SLOTS {
            return Err(VectorError::Capacity);
        }
        let slot = self.ext.len() as u32;
        let level = self.random_level();
        self.rows.push_zeroed();
        let cap = self.links0.capacity();
        self.links0.resize(self.links0.len() + self.m0() + 1, 0);
        if self.links0.capacity() != cap {
            advise_huge_pages(&self.links0);
        }
        self.levels.push(level as u8);
        if level > 0 {
            self.upper_off.push(self.upper.len() as u32);
            self.upper.resize(self.upper.len() + level * (self.params.m + 1), 0);
        } else {
            self.upper_off.push(NONE);
        }
        self.ext.push(0);
        self.deleted.push(true);
        Ok(slot)
    }

    fn mark_deleted(&mut self, slot: u32) {
        self.deleted[slot as usize] = true;
        self.free.insert(slot);
    }

    /// Removes `id`; false if it was not present.
    pub fn remove(&mut self, id: u32) -> bool {
        match self.slots.remove(&id) {
            Some(s) => {
                self.mark_deleted(s);
                true
            }
            None => false,
        }
    }

    /// Greedy walk on one upper level towards `q`, never stepping onto
    /// `skip` (the node being inserted, which stale links may lead to).
    fn greedy(&self, q: *const f32, cur: &mut u32, dcur: &mut f32, level: usize, skip: u32) {
        loop {
            let mut changed = false;
            for &n in self.links(*cur, level) {
                if n == skip {
                    continue;
                }
                let d = self.d(q, n);
                if d < *dcur {
                    *dcur = d;
                    *cur = n;
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Beam search on one level. Nodes failing `accept` (removed, filtered
    /// out, or the node being inserted) are traversed but never enter the
    /// results. On return `h.res` holds up to `ef` accepted nodes.
    #[allow(clippy::too_many_arguments)]
    fn search_layer<A: Fn(u32) -> bool>(
        &self,
        q: *const f32,
        eps: &[Scored],
        ef: usize,
        level: usize,
        vis: &mut Visited,
        h: &mut Heaps,
        accept: A,
    ) {
        h.cand.clear();
        h.res.clear();
        for &e in eps {
            if vis.test_and_set(e.key) {
                continue;
            }
            h.cand.push(Reverse(e));
            if accept(e.key) {
                h.res.push(e);
                if h.res.len() > ef {
                    h.res.pop();
                }
            }
        }
        let mut bound = if h.res.len() >= ef { h.res.peek().map_or(f32::INFINITY, |s| s.d) } else { f32::INFINITY };
        // Cache lines of each neighbour's vector to prefetch: the whole row
        // up to 2 KiB (512 dimensions); past that the hardware prefetcher
        // follows the stream on its own.
        let lines = (self.rows.stride() / 16).min(32);
        let w0 = self.m0() + 1;
        let mut fresh = [0u32; 2 * MAX_M];
        while let Some(Reverse(c)) = h.cand.pop() {
            if c.d > bound {
                break;
            }
            // The next candidate's adjacency list is needed right after this
            // one is expanded: start loading it now (level 0 only, where the
            // lists are in one array and nearly all the time is spent).
            if level == 0 {
                if let Some(Reverse(next)) = h.cand.peek() {
                    let p = self.links0.as_ptr().wrapping_add(next.key as usize * w0);
                    for o in (0..w0).step_by(16) {
                        prefetch(p.wrapping_add(o));
                    }
                    prefetch(p.wrapping_add(w0 - 1));
                }
            }
            let nb = self.links(c.key, level);
            // Mark the unvisited neighbours and start loading all their
            // vectors at once, so the memory latencies overlap instead of
            // being paid one distance at a time.
            let mut cnt = 0;
            for &n in nb {
                if !vis.test_and_set(n) {
                    fresh[cnt] = n;
                    cnt += 1;
                    let p = self.rows.ptr(n as usize);
                    for l in 0..lines {
                        prefetch(p.wrapping_add(l * 16));
                    }
                }
            }
            for &n in &fresh[..cnt] {
                let d = self.d(q, n);
                if d < bound {
                    h.cand.push(Reverse(Scored { d, key: n }));
                    if accept(n) {
                        h.res.push(Scored { d, key: n });
                        if h.res.len() > ef {
                            h.res.pop();
                        }
                        if h.res.len() >= ef {
                            bound = h.res.peek().map_or(f32::INFINITY, |s| s.d);
                        }
                    }
                }
            }
        }
    }

    /// Neighbour selection heuristic: walking candidates nearest first, keep
    /// one only if it is closer to the base than to every neighbour kept so
    /// far. This spreads links over directions instead of piling them into
    /// one cluster, which is what keeps clustered data navigable.
    fn select(&self, sorted: &[Scored], m: usize, out: &mut Vec<u32>) {
        out.clear();
        if sorted.len() <= m {
            out.extend(sorted.iter().map(|s| s.key));
            return;
        }
        let mut kept: Vec<Scored> = Vec::with_capacity(m);
        for c in sorted {
            if kept.len() >= m {
                break;
            }
            if kept.iter().all(|r| self.d_slots(r.key, c.key) >= c.d) {
                kept.push(*c);
            }
        }
        out.extend(kept.iter().map(|s| s.key));
    }

    /// Adds `new` to `node`'s list on `level`, pruning with the heuristic
    /// when the list is full.
    fn connect(&mut self, node: u32, new: u32, level: usize) {
        let cap = if level == 0 { self.m0() } else { self.params.m };
        let cur = self.links(node, level);
        if cur.contains(&new) {
            return;
        }
        if cur.len() < cap {
            let mut v = cur.to_vec();
            v.push(new);
            self.set_links(node, level, &v);
            return;
        }
        let mut cands: Vec<Scored> = cur.iter().map(|&x| Scored { d: self.d_slots(node, x), key: x }).collect();
        cands.push(Scored { d: self.d_slots(node, new), key: new });
        cands.sort_unstable();
        let mut out = Vec::with_capacity(cap);
        self.select(&cands, cap, &mut out);
        self.set_links(node, level, &out);
    }

    /// Links a stored slot into the graph.
    fn insert(&mut self, slot: u32) {
        let level = self.levels[slot as usize] as usize;
        if self.entry == NONE {
            self.entry = slot;
            self.max_level = level;
            return;
        }
        let q = self.rows.ptr(slot as usize);
        let mut cur = self.entry;
        let mut dcur = self.d(q, cur);
        for l in (level + 1..=self.max_level).rev() {
            self.greedy(q, &mut cur, &mut dcur, l, slot);
        }
        let efc = self.params.ef_construction;
        let n = self.ext.len();
        let mut eps = vec![Scored { d: dcur, key: cur }];
        let mut h = Heaps::new(efc);
        let mut chosen = Vec::with_capacity(self.m0());
        for l in (0..=level.min(self.max_level)).rev() {
            let found: Vec<Scored> = with_visited(n, |vis| {
                // The slot itself may be reachable through links left from
                // its previous occupant; it must not become its own neighbour.
                vis.test_and_set(slot);
                let deleted = &self.deleted;
                self.search_layer(q, &eps, efc, l, vis, &mut h, |x| !deleted[x as usize]);
                std::mem::take(&mut h.res).into_sorted_vec()
            });
            if found.is_empty() {
                // Everything reachable is removed: keep descending from the
                // same entry; the node still gets linked where it can.
                continue;
            }
            self.select(&found, self.params.m, &mut chosen);
            let list = chosen.clone();
            self.set_links(slot, l, &list);
            for &nb in &list {
                self.connect(nb, slot, l);
            }
            eps = found;
            h.res = BinaryHeap::with_capacity(efc + 1);
        }
        if level > self.max_level || self.deleted[self.entry as usize] && level == self.max_level {
            self.entry = slot;
            self.max_level = level;
        }
    }

    fn query(&self, q: &[f32]) -> Result<Vec<f32>> {
        check_vector(q, self.dim, "query")?;
        let mut buf = vec![0f32; self.rows.stride()];
        prepare_into(q, self.metric, &mut buf);
        Ok(buf)
    }

    pub fn search(&self, q: &[f32], k: usize, filter: Option<&[u32]>) -> Result<Vec<Hit>> {
        self.search_with_ef(q, k, self.params.ef, filter)
    }

    /// The k nearest live vectors, nearest first. HNSW is approximate; but
    /// whenever the graph walk yields fewer than `min(k, eligible)` results
    /// (a very selective filter, or many removals) the eligible vectors are
    /// scanned exactly, so the count is always `min(k, eligible)`.
    pub fn search_with_ef(&self, q: &[f32], k: usize, ef: usize, filter: Option<&[u32]>) -> Result<Vec<Hit>> {
        check_ef("ef", ef)?;
        let q = self.query(q)?;
        let k = k.min(self.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let ef = ef.max(k);
        let found = match filter {
            None => {
                let got = if self.free.is_empty() {
                    self.walk(&q, ef, |_| true)
                } else {
                    let del = &self.deleted;
                    self.walk(&q, ef, |x| !del[x as usize])
                };
                if got.len() >= k {
                    got
                } else {
                    let slots = (0..self.ext.len() as u32).filter(|&s| !self.deleted[s as usize]);
                    return Ok(self.finish(scan(&self.rows, &self.dist, &q, k, slots, |s| s), k));
                }
            }
            Some(allowed) => {
                let mut bits = BitSet::new(self.ext.len());
                let mut slots: Vec<u32> = allowed
                    .iter()
                    .filter_map(|id| self.slots.get(id).copied())
                    .filter(|&s| bits.insert(s))
                    .collect();
                let k = k.min(slots.len());
                if k == 0 {
                    return Ok(Vec::new());
                }
                // Filtered graph search does about ef*2M/s distance
                // evaluations for selectivity s, a scan does s*n: the scan
                // wins when s^2 * n < ef * 2M.
                let sel = slots.len() as f64;
                if sel * sel < (ef * self.m0()) as f64 * self.len() as f64 {
                    slots.sort_unstable();
                    return Ok(self.finish(scan(&self.rows, &self.dist, &q, k, slots.into_iter(), |s| s), k));
                }
                let del = &self.deleted;
                let got = self.walk(&q, ef, |x| !del[x as usize] && bits.contains(x));
                if got.len() >= k {
                    got
                } else {
                    slots.sort_unstable();
                    return Ok(self.finish(scan(&self.rows, &self.dist, &q, k, slots.into_iter(), |s| s), k));
                }
            }
        };
        Ok(self.finish(found, k))
    }

    /// Slot results -> caller hits, first k, ties ordered by caller id so
    /// results do not depend on slot numbering.
    fn finish(&self, mut found: Vec<Scored>, k: usize) -> Vec<Hit> {
        found.truncate(k);
        let mut hits: Vec<Hit> = found.iter().map(|s| Hit { id: self.ext[s.key as usize], distance: s.d }).collect();
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        hits
    }

    /// Descends the upper levels greedily, then beam-searches level 0.
    fn walk<A: Fn(u32) -> bool>(&self, q: &[f32], ef: usize, accept: A) -> Vec<Scored> {
        if self.entry == NONE {
            return Vec::new();
        }
        let qp = q.as_ptr();
        let mut cur = self.entry;
        let mut dcur = self.d(qp, cur);
        for l in (1..=self.max_level).rev() {
            self.greedy(qp, &mut cur, &mut dcur, l, NONE);
        }
        let mut h = Heaps::new(ef);
        with_visited(self.ext.len(), |vis| {
            self.search_layer(qp, &[Scored { d: dcur, key: cur }], ef, 0, vis, &mut h, accept);
        });
        h.res.into_sorted_vec()
    }

    pub fn get(&self, id: u32) -> Option<Vec<f32>> {
        self.slots.get(&id).map(|&s| self.rows.row(s as usize)[..self.dim].to_vec())
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.rows.heap_bytes()
            + self.links0.capacity() * 4
            + self.levels.capacity()
            + self.upper_off.capacity() * 4
            + self.upper.capacity() * 4
            + self.ext.capacity() * 4
            + self.deleted.capacity()
            // BTreeSet nodes hold up to 11 keys in about 100 bytes.
            + self.free.len().div_ceil(6) * 100
            + idmap_bytes(&self.slots)
    }

    pub fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.links0.shrink_to_fit();
        self.levels.shrink_to_fit();
        self.upper_off.shrink_to_fit();
        self.upper.shrink_to_fit();
        self.ext.shrink_to_fit();
        self.deleted.shrink_to_fit();
        self.slots.shrink_to_fit();
    }

    pub(crate) fn write_body(&self, w: &mut Writer) {
        let p = &self.params;
        w.u32(p.m as u32);
        w.u32(p.ef_construction as u32);
        w.u32(p.ef as u32);
        w.u64(p.seed);
        w.u64(self.rng.0);
        let n = self.ext.len();
        w.u32(n as u32);
        w.u32(self.entry);
        w.u32(self.max_level as u32);
        w.u32s(&self.ext);
        w.buf.extend_from_slice(&self.levels);
        w.buf.extend(self.deleted.iter().map(|&d| d as u8));
        for r in 0..n {
            w.f32s(&self.rows.row(r)[..self.dim]);
        }
        w.u32s(&self.links0);
        w.u32(self.upper.len() as u32);
        w.u32s(&self.upper);
    }

    pub(crate) fn read_body(r: &mut Reader, dim: usize, metric: Metric) -> Result<Hnsw> {
        let m = r.u32("m")? as usize;
        let ef_construction = r.u32("efConstruction")? as usize;
        let ef = r.u32("ef")? as usize;
        let seed = r.u64("seed")?;
        let rng = r.u64("rng state")?;
        let params = HnswParams { m, ef_construction, ef, seed };
        params.validate().map_err(|e| VectorError::corrupt(format!("bad parameters: {e}")))?;
        let n = r.u32("node count")? as usize;
        let entry = r.u32("entry point")?;
        let max_level = r.u32("max level")? as usize;
        let w0 = 2 * m + 1;
        // Per node: id, level, flag, vector, level-0 list. Checked against
        // the bytes present before anything is allocated.
        let per_node = 4 + 1 + 1 + dim * 4 + w0 * 4;
        if n > MAX_SLOTS || n.checked_mul(per_node).is_none_or(|need| need > r.remaining()) {
            return Err(VectorError::corrupt("node count exceeds the data present"));
        }
        if max_level > MAX_LEVEL {
            return Err(VectorError::corrupt("max level out of range"));
        }
        let mut h = Hnsw::new(dim, metric, params)?;
        h.rng = SplitMix64(rng);
        h.ext = r.u32s(n, "ids")?;
        h.levels = r.bytes(n, "levels")?.to_vec();
        let flags = r.bytes(n, "deleted flags")?;
        h.deleted = Vec::with_capacity(n);
        for &f in flags {
            match f {
                0 => h.deleted.push(false),
                1 => h.deleted.push(true),
                _ => return Err(VectorError::corrupt("bad deleted flag")),
            }
        }
        h.rows.reserve(n);
        for _ in 0..n {
            let row = h.rows.push_zeroed();
            r.f32_into(&mut h.rows.row_mut(row)[..dim], "vectors")?;
            if !h.rows.row(row).iter().all(|x| x.is_finite()) {
                return Err(VectorError::corrupt("a stored vector is not finite"));
            }
        }
        h.links0 = Vec::with_capacity(n * w0);
        advise_huge_pages(&h.links0);
        r.u32s_into(&mut h.links0, n * w0, "level-0 links")?;
        let upper_len = r.u32("upper link count")? as usize;
        if upper_len.checked_mul(4).is_none_or(|need| need > r.remaining()) {
            return Err(VectorError::corrupt("upper link count exceeds the data present"));
        }
        h.upper = r.u32s(upper_len, "upper links")?;

        // Structure: levels, upper offsets, link counts and targets.
        let wu = m + 1;
        let mut off = 0usize;
        h.upper_off = Vec::with_capacity(n);
        let mut top = 0usize;
        for s in 0..n {
            let lv = h.levels[s] as usize;
            if lv > MAX_LEVEL {
                return Err(VectorError::corrupt("node level out of range"));
            }
            top = top.max(lv);
            if lv == 0 {
                h.upper_off.push(NONE);
            } else {
                h.upper_off.push(off as u32);
                off += lv * wu;
            }
        }
        if off != upper_len {
            return Err(VectorError::corrupt("upper link storage does not match node levels"));
        }
        for s in 0..n {
            for l in 0..=h.levels[s] as usize {
                let (buf, b, cap) = if l == 0 {
                    (&h.links0, s * w0, 2 * m)
                } else {
                    (&h.upper, h.upper_off[s] as usize + (l - 1) * wu, m)
                };
                let c = buf[b] as usize;
                if c > cap {
                    return Err(VectorError::corrupt("neighbour count out of range"));
                }
                for &t in &buf[b + 1..b + 1 + c] {
                    if t as usize >= n || (h.levels[t as usize] as usize) < l {
                        return Err(VectorError::corrupt("neighbour link points to no node on that level"));
                    }
                }
            }
        }
        if n == 0 {
            if entry != NONE || max_level != 0 {
                return Err(VectorError::corrupt("empty index with an entry point"));
            }
        } else if entry as usize >= n || h.levels[entry as usize] as usize != max_level || top != max_level {
            return Err(VectorError::corrupt("bad entry point"));
        }
        h.entry = entry;
        h.max_level = max_level;
        h.slots.reserve(n);
        for s in 0..n {
            if h.deleted[s] {
                h.free.insert(s as u32);
            } else if h.slots.insert(h.ext[s], s as u32).is_some() {
                return Err(VectorError::corrupt(format!("id {} appears twice", h.ext[s])));
            }
        }
        Ok(h)
    }

    /// Graph invariants, for tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let n = self.ext.len();
        for s in 0..n as u32 {
            for l in 0..=self.levels[s as usize] as usize {
                for &t in self.links(s, l) {
                    assert!((t as usize) < n);
                    assert!(self.levels[t as usize] as usize >= l);
                    assert_ne!(t, s, "self link");
                }
            }
        }
        for (id, &s) in &self.slots {
            assert_eq!(self.ext[s as usize], *id);
            assert!(!self.deleted[s as usize]);
        }
        assert_eq!(self.slots.len() + self.free.len(), n);
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::SplitMix64;
    use super::super::distance::Isa;
    use super::super::flat::Flat;
    use super::*;

    /// Clustered, low-rank data resembling text embeddings.
    pub(crate) fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64(seed);
        let mut gauss = move || {
            let (u, v) = (r.next_unit(), r.next_unit());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        };
        let rank = 16.min(dim);
        let basis: Vec<f32> = (0..rank * dim).map(|_| gauss()).collect();
        let centres: Vec<f32> = (0..20 * rank).map(|_| gauss() * 2.0).collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[(i % 20) * rank..(i % 20 + 1) * rank];
            let z: Vec<f32> = c.iter().map(|x| x + gauss()).collect();
            for j in 0..dim {
                let mut x = 0.3 * gauss();
                for (t, zt) in z.iter().enumerate() {
                    x += zt * basis[t * dim + j];
                }
                out.push(x);
            }
        }
        out
    }

    fn recall(h: &Hnsw, f: &Flat, queries: &[f32], dim: usize, k: usize) -> f64 {
        let mut hit = 0;
        let mut total = 0;
        for q in queries.chunks(dim) {
            let truth: Vec<u32> = f.search(q, k, None).unwrap().iter().map(|h| h.id).collect();
            let got = h.search(q, k, None).unwrap();
            assert_eq!(got.len(), truth.len());
            hit += got.iter().filter(|g| truth.contains(&g.id)).count();
            total += truth.len();
        }
        hit as f64 / total as f64
    }

    fn build(n: usize, dim: usize, metric: Metric, p: HnswParams) -> (Hnsw, Flat, Vec<f32>) {
        let data = clustered(n, dim, 1);
        let ids: Vec<u32> = (0..n as u32).collect();
        let mut h = Hnsw::new(dim, metric, p).unwrap();
        h.add_batch(&ids, &data).unwrap();
        let mut f = Flat::new(dim, metric).unwrap();
        f.add_batch(&ids, &data).unwrap();
        (h, f, data)
    }

    #[test]
    fn recall_on_clustered_data_for_each_metric() {
        // Inner product on unnormalised vectors is not a metric: the
        // nearest "neighbours" are the longest vectors, and graph search needs
        // a wider beam for the same recall (hnswlib behaves the same way).
        for (metric, ef) in [(Metric::Cosine, 64), (Metric::L2, 64), (Metric::InnerProduct, 512)] {
            let p = HnswParams { m: 12, ef_construction: 100, ef, seed: 7 };
            let (h, f, _) = build(3000, 32, metric, p);
            h.check_invariants();
            let queries = clustered(100, 32, 99);
            let r = recall(&h, &f, &queries, 32, 10);
            assert!(r >= 0.95, "{metric:?} recall {r}");
        }
    }

    #[test]
    fn exact_on_small_known_set() {
        let mut h = Hnsw::new(2, Metric::L2, HnswParams::default()).unwrap();
        for i in 0..5u32 {
            h.add(i + 100, &[i as f32, 0.0]).unwrap();
        }
        let got = h.search(&[2.2, 0.0], 3, None).unwrap();
        assert_eq!(got.iter().map(|h| h.id).collect::<Vec<_>>(), vec![102, 103, 101]);
        assert!((got[0].distance - 0.04).abs() < 1e-5);
        assert_eq!(h.search(&[0.0, 0.0], 50, None).unwrap().len(), 5);
    }

    #[test]
    fn builds_are_reproducible() {
        let p = HnswParams { m: 8, ef_construction: 50, ef: 32, seed: 42 };
        let (a, _, _) = build(1500, 16, Metric::Cosine, p);
        let (b, _, _) = build(1500, 16, Metric::Cosine, p);
        assert_eq!(a.links0, b.links0);
        assert_eq!(a.upper, b.upper);
        assert_eq!(a.levels, b.levels);
        let (c, _, _) = build(1500, 16, Metric::Cosine, HnswParams { seed: 43, ..p });
        assert_ne!(a.levels, c.levels, "the seed drives the levels");
    }

    #[test]
    fn removal_excludes_but_still_routes() {
        let p = HnswParams { m: 8, ef_construction: 100, ef: 50, seed: 3 };
        let (mut h, mut f, _) = build(2000, 24, Metric::L2, p);
        for id in (0..2000u32).filter(|i| i % 3 == 0) {
            assert!(h.remove(id));
            assert!(f.remove(id));
        }
        assert!(!h.remove(0));
        assert_eq!(h.len(), f.len());
        h.check_invariants();
        let queries = clustered(60, 24, 5);
        for q in queries.chunks(24) {
            for hit in h.search(q, 10, None).unwrap() {
                assert!(hit.id % 3 != 0, "removed id {} returned", hit.id);
            }
        }
        assert!(recall(&h, &f, &queries, 24, 10) >= 0.9);
    }

    #[test]
    fn replacement_and_slot_reuse_keep_recall() {
        let p = HnswParams { m: 10, ef_construction: 100, ef: 64, seed: 11 };
        let (mut h, mut f, _) = build(2000, 24, Metric::Cosine, p);
        let fresh = clustered(2000, 24, 77);
        // Replace half the ids with new vectors, and remove then re-add others.
        for i in (0..2000usize).step_by(2) {
            h.add(i as u32, &fresh[i * 24..(i + 1) * 24]).unwrap();
            f.add(i as u32, &fresh[i * 24..(i + 1) * 24]).unwrap();
        }
        for i in (1..2000u32).step_by(4) {
            h.remove(i);
            f.remove(i);
        }
        for i in (1..2000usize).step_by(4) {
            let id = 5000 + i as u32;
            h.add(id, &fresh[i * 24..(i + 1) * 24]).unwrap();
            f.add(id, &fresh[i * 24..(i + 1) * 24]).unwrap();
        }
        h.check_invariants();
        assert_eq!(h.len(), f.len());
        assert!(h.slot_count() <= 2000 + 2, "deleted slots are reused, got {}", h.slot_count());
        let queries = clustered(80, 24, 123);
        let r = recall(&h, &f, &queries, 24, 10);
        assert!(r >= 0.9, "recall after churn {r}");
        // The replaced vector is the one returned.
        let q = &fresh[10 * 24..11 * 24];
        assert_eq!(h.search(q, 1, None).unwrap()[0].id, 10);
    }

    /// Random adds, replacements, removals and searches against the flat
    /// index as a model.
    #[test]
    fn random_churn_matches_the_flat_model() {
        let dim = 8;
        let mut r = SplitMix64(99);
        let p = HnswParams { m: 6, ef_construction: 40, ef: 128, seed: 4 };
        let mut h = Hnsw::new(dim, Metric::L2, p).unwrap();
        let mut f = Flat::new(dim, Metric::L2).unwrap();
        let (mut hit, mut total) = (0usize, 0usize);
        for step in 0..6000 {
            let id = (r.next_u64() % 400) as u32;
            let v: Vec<f32> = (0..dim).map(|_| r.next_unit() as f32).collect();
            match r.next_u64() % 10 {
                0..=5 => {
                    h.add(id, &v).unwrap();
                    f.add(id, &v).unwrap();
                }
                6..=7 => assert_eq!(h.remove(id), f.remove(id), "step {step}"),
                _ => {
                    let allowed: Vec<u32> = (0..400).filter(|_| r.next_u64().is_multiple_of(3)).collect();
                    let filter = if step % 2 == 0 { Some(&allowed[..]) } else { None };
                    let want: Vec<u32> = f.search(&v, 5, filter).unwrap().iter().map(|x| x.id).collect();
                    let got = h.search(&v, 5, filter).unwrap();
                    assert_eq!(got.len(), want.len(), "step {step}");
                    hit += got.iter().filter(|g| want.contains(&g.id)).count();
                    total += want.len();
                }
            }
            assert_eq!(h.len(), f.len());
        }
        h.check_invariants();
        assert!(h.slot_count() <= 402, "slots are reused: {}", h.slot_count());
        let recall = hit as f64 / total as f64;
        assert!(recall >= 0.98, "recall under churn {recall}");
    }

    #[test]
    fn filtered_search_returns_k_when_enough_allowed() {
        let p = HnswParams { m: 8, ef_construction: 80, ef: 16, seed: 5 };
        let (h, f, _) = build(3000, 16, Metric::L2, p);
        let queries = clustered(20, 16, 8);
        // Selective (scan path), moderate and broad (graph path) filters.
        for modulus in [500u32, 7, 2] {
            let allowed: Vec<u32> = (0..3000u32).filter(|i| i % modulus == 1).collect();
            for q in queries.chunks(16) {
                let got = h.search(q, 10, Some(&allowed)).unwrap();
                assert_eq!(got.len(), 10.min(allowed.len()), "modulus {modulus}");
                assert!(got.iter().all(|g| g.id % modulus == 1));
                let truth: Vec<u32> = f.search(q, 10, Some(&allowed)).unwrap().iter().map(|h| h.id).collect();
                let hits = got.iter().filter(|g| truth.contains(&g.id)).count();
                assert!(hits * 10 >= truth.len() * 7, "modulus {modulus}: {hits}/{}", truth.len());
            }
        }
        // A filter naming only removed or unknown ids yields nothing.
        assert!(h.search(&queries[..16], 5, Some(&[99999])).unwrap().is_empty());
    }

    #[test]
    fn returns_min_k_len_even_when_most_are_removed() {
        let p = HnswParams { m: 4, ef_construction: 20, ef: 4, seed: 1 };
        let (mut h, _, _) = build(500, 8, Metric::L2, p);
        for id in 0..495u32 {
            h.remove(id);
        }
        let got = h.search(&[0.0; 8], 10, None).unwrap();
        let mut ids: Vec<u32> = got.iter().map(|g| g.id).collect();
        ids.sort();
        assert_eq!(ids, vec![495, 496, 497, 498, 499]);
    }

    #[test]
    fn every_kernel_builds_the_same_quality() {
        for isa in Isa::available() {
            let data = clustered(1000, 20, 2);
            let ids: Vec<u32> = (0..1000).collect();
            let mut h = Hnsw::with_kernels(20, Metric::L2, HnswParams::default(), Kernels::for_isa(isa)).unwrap();
            h.add_batch(&ids, &data).unwrap();
            let mut f = Flat::new(20, Metric::L2).unwrap();
            f.add_batch(&ids, &data).unwrap();
            let r = recall(&h, &f, &clustered(50, 20, 3), 20, 10);
            assert!(r >= 0.95, "{isa:?} recall {r}");
        }
    }

    #[test]
    fn parameters_are_validated() {
        let bad = [
            HnswParams { m: 1, ..Default::default() },
            HnswParams { m: 10_000, ..Default::default() },
            HnswParams { ef_construction: 0, ..Default::default() },
            HnswParams { ef: 0, ..Default::default() },
        ];
        for p in bad {
            assert_eq!(Hnsw::new(4, Metric::L2, p).err().unwrap().code(), "bad_param", "{p:?}");
        }
        let mut h = Hnsw::new(4, Metric::L2, HnswParams::default()).unwrap();
        assert_eq!(h.set_ef(0).unwrap_err().code(), "bad_param");
        h.set_ef(200).unwrap();
        assert_eq!(h.ef(), 200);
        assert_eq!(h.search_with_ef(&[0.0; 4], 1, 0, None).unwrap_err().code(), "bad_param");
    }
}
