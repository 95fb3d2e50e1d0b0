//! Timing harness for tuning, run by hand:
//! `cargo test --release --offline perf_ -- --ignored --nocapture`.
//! (The published comparison with hnswlib lives in bench/native/vectors.mjs.)

#![cfg(test)]

use std::time::Instant;

use super::common::SplitMix64;
use super::distance::{Isa, Kernels};
use super::{Flat, Hnsw, HnswParams, Metric};

/// Embedding-like data: points around cluster centres in a low-rank latent
/// space, projected to `dim` and perturbed by isotropic noise.
fn embeddings(n: usize, dim: usize, rank: usize, clusters: usize, seed: u64, data_seed: u64) -> Vec<f32> {
    let mut g = SplitMix64(seed);
    let gauss = move |r: &mut SplitMix64| {
        let (u, v) = (r.next_unit(), r.next_unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let basis: Vec<f32> = (0..rank * dim).map(|_| gauss(&mut g) / (rank as f32).sqrt()).collect();
    let centres: Vec<f32> = (0..clusters * rank).map(|_| gauss(&mut g)).collect();
    let mut r = SplitMix64(data_seed);
    let mut out = Vec::with_capacity(n * dim);
    let mut z = vec![0f32; rank];
    for _ in 0..n {
        let c = (r.next_u64() % clusters as u64) as usize;
        for (t, zt) in z.iter_mut().enumerate() {
            *zt = centres[c * rank + t] + 0.5 * gauss(&mut r);
        }
        for j in 0..dim {
            let mut x = 0.15 * gauss(&mut r);
            for (t, zt) in z.iter().enumerate() {
                x += zt * basis[t * dim + j];
            }
            out.push(x);
        }
    }
    out
}

#[test]
#[ignore]
fn perf_flat_10k_384() {
    let dim = 384;
    let n = 10_000;
    let data = embeddings(n, dim, 48, 50, 1, 2);
    let queries = embeddings(200, dim, 48, 50, 1, 3);
    let ids: Vec<u32> = (0..n as u32).collect();
    // Each kernel twice, in both orders, so a noisy neighbour or a warm-up
    // effect shows up as a disagreement instead of a false ranking.
    let mut isas = Isa::available();
    isas.extend(Isa::available().into_iter().rev());
    for isa in isas {
        let mut f = Flat::with_kernels(dim, Metric::Cosine, Kernels::for_isa(isa)).unwrap();
        f.add_batch(&ids, &data).unwrap();
        for q in queries.chunks(dim).take(20) {
            f.search(q, 10, None).unwrap();
        }
        let t = Instant::now();
        let mut rounds = 0;
        while t.elapsed().as_secs_f64() < 1.0 {
            for q in queries.chunks(dim) {
                std::hint::black_box(f.search(q, 10, None).unwrap());
            }
            rounds += 1;
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / (rounds * 200) as f64;
        eprintln!("flat 10k x 384 {:>9}: {:.4} ms/query", isa.name(), per);
    }
}

#[test]
#[ignore]
fn perf_hnsw_100k_128() {
    let dim = 128;
    let n: usize = std::env::var("PERF_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let data = embeddings(n, dim, 32, 100, 11, 12);
    let queries = embeddings(1000, dim, 32, 100, 11, 13);
    let ids: Vec<u32> = (0..n as u32).collect();
    let mut f = Flat::new(dim, Metric::Cosine).unwrap();
    f.add_batch(&ids, &data).unwrap();
    let t = Instant::now();
    let truth: Vec<Vec<u32>> =
        queries.chunks(dim).map(|q| f.search(q, 10, None).unwrap().iter().map(|h| h.id).collect()).collect();
    eprintln!("exact truth: {:.3} ms/query", t.elapsed().as_secs_f64() * 1e3 / 1000.0);
    let t = Instant::now();
    let isa = match std::env::var("PERF_ISA").as_deref() {
        Ok("portable") => Isa::Portable,
        Ok("avx2") => Isa::Avx2,
        Ok("avx512") => Isa::Avx512,
        _ => Kernels::for_dim(dim).isa,
    };
    eprintln!("kernels: {}", isa.name());
    let p = HnswParams { m: 16, ef_construction: 200, ef: 64, seed: 100 };
    let cache = std::env::var("PERF_CACHE").ok();
    let mut h = match cache.as_ref().and_then(|c| std::fs::read(c).ok()) {
        Some(bytes) => match super::Index::load(&bytes).unwrap() {
            super::Index::Hnsw(h) => h,
            _ => panic!("cached index is not hnsw"),
        },
        None => {
            let t = Instant::now();
            let mut h = Hnsw::with_kernels(dim, Metric::Cosine, p, Kernels::for_isa(isa)).unwrap();
            h.add_batch(&ids, &data).unwrap();
            eprintln!("hnsw build {n} x {dim}: {:.2} s", t.elapsed().as_secs_f64());
            if let Some(c) = &cache {
                std::fs::write(c, super::Index::Hnsw(h).save()).unwrap();
                return;
            }
            h
        }
    };
    eprintln!(
        "hnsw build {} x {}: {:.2} s, {:.1} MiB",
        n,
        dim,
        t.elapsed().as_secs_f64(),
        h.memory_bytes() as f64 / (1 << 20) as f64
    );
    let reps: usize = std::env::var("PERF_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    for ef in [10, 16, 24, 32, 48, 64, 128, 256] {
        h.set_ef(ef).unwrap();
        let t = Instant::now();
        let mut hit = 0;
        for _ in 0..reps {
            hit = 0;
            for (q, tr) in queries.chunks(dim).zip(&truth) {
                hit += h.search(q, 10, None).unwrap().iter().filter(|x| tr.contains(&x.id)).count();
            }
        }
        let s = t.elapsed().as_secs_f64();
        eprintln!("ef {:>4}: recall {:.4}  {:>8.0} qps", ef, hit as f64 / 10000.0, (reps * 1000) as f64 / s);
    }
}

#[test]
#[ignore]
fn perf_kernels_in_cache() {
    for dim in [64usize, 128, 384, 768, 1536] {
        let a: Vec<f32> = (0..dim * 64).map(|i| (i % 13) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..dim).map(|i| (i % 7) as f32 * 0.1).collect();
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa);
            let t = Instant::now();
            let mut s = 0f32;
            let iters = 20_000_000 / dim;
            for it in 0..iters {
                let r = it % 64;
                s += k.dot(&a[r * dim..(r + 1) * dim], &b);
            }
            std::hint::black_box(s);
            let ns = t.elapsed().as_secs_f64() * 1e9 / iters as f64;
            eprintln!("dim {dim:>5} {:>9}: {ns:.2} ns/dot", isa.name());
        }
    }
}

#[test]
#[ignore]
fn perf_hnsw_threads() {
    let dim = 128;
    let n: usize = std::env::var("PERF_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let data = embeddings(n, dim, 32, 100, 11, 12);
    let queries = embeddings(1000, dim, 32, 100, 11, 13);
    let ids: Vec<u32> = (0..n as u32).collect();
    let mut h = Hnsw::new(dim, Metric::Cosine, HnswParams { m: 16, ef_construction: 100, ef: 64, seed: 100 }).unwrap();
    h.add_batch(&ids, &data).unwrap();
    let h = std::sync::Arc::new(h);
    for threads in [1usize, 2, 4] {
        let t = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let h = h.clone();
                let queries = queries.clone();
                std::thread::spawn(move || {
                    for _ in 0..3 {
                        for q in queries.chunks(dim) {
                            std::hint::black_box(h.search(q, 10, None).unwrap());
                        }
                    }
                })
            })
            .collect();
        for x in hs {
            x.join().unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        eprintln!("{threads} threads: {:.0} qps total", (threads * 3000) as f64 / s);
    }
}

/// Search-only timing on an index cached by `perf_hnsw_100k_128`
/// (PERF_CACHE=/path): for comparing search-loop variants quickly.
#[test]
#[ignore]
fn perf_search_only() {
    let dim = 128;
    let Some(bytes) = std::env::var("PERF_CACHE").ok().and_then(|c| std::fs::read(c).ok()) else { return };
    let mut h = match super::Index::load(&bytes).unwrap() {
        super::Index::Hnsw(h) => h,
        _ => panic!("cached index is not hnsw"),
    };
    let queries = embeddings(1000, dim, 32, 100, 11, 13);
    if let Ok(s) = std::fs::read_to_string("/proc/self/smaps_rollup") {
        for l in s.lines().filter(|l| l.starts_with("AnonHugePages") || l.starts_with("Rss")) {
            eprintln!("{l}");
        }
    }
    for ef in [16, 64, 128] {
        h.set_ef(ef).unwrap();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for q in queries.chunks(dim) {
                std::hint::black_box(h.search(q, 10, None).unwrap());
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        eprintln!("ef {ef:>4}: {:>8.0} qps (best of 5)", 1000.0 / best);
    }
}
