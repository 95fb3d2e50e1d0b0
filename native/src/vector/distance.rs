//! Distance kernels: dot product and squared L2 over f32 slices.
//!
//! Each kernel exists in a portable form and, on x86_64, in AVX2+FMA and
//! AVX-512F forms. The best one is picked once per index at runtime
//! (`Kernels::detect`), so a binary built for baseline x86_64 still uses the
//! wide units of the machine it runs on. The index code calls the kernels
//! through plain function pointers: the call costs a few cycles, which is
//! small next to a 128- or 384-dimension distance, and it keeps the search
//! loops free of per-ISA copies.

/// Raw kernel signature: both pointers must be valid for `n` reads.
pub type RawKernel = unsafe fn(*const f32, *const f32, usize) -> f32;

/// Which implementation a `Kernels` value dispatches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512f",
        }
    }

    /// Every implementation this CPU can run, best last.
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
        }
        v
    }
}

/// A pair of kernels for one instruction set.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub isa: Isa,
    dot: RawKernel,
    l2sq: RawKernel,
}

impl Kernels {
    /// The widest kernels this CPU supports. Detection is cached by std,
    /// so calling this per index construction is cheap.
    pub fn detect() -> Kernels {
        // Best last; `available` only lists what the CPU reports.
        Kernels::for_isa(*Isa::available().last().unwrap_or(&Isa::Portable))
    }

    /// The fastest kernels for vectors of `dim` components. AVX-512 only
    /// pays from about 512 dimensions: below that a distance is a handful of
    /// 512-bit steps and the wider horizontal reduction and load pressure eat
    /// the gain (on an AMD EPYC with AVX-512, AVX2 was 10-20% faster at 128
    /// and 384 dimensions and AVX-512 about 20% faster from 768; see the
    /// `perf_kernels_in_cache` harness).
    pub fn for_dim(dim: usize) -> Kernels {
        let isas = Isa::available();
        #[cfg(target_arch = "x86_64")]
        {
            if dim < 512 && isas.contains(&Isa::Avx2) {
                return Kernels::for_isa(Isa::Avx2);
            }
        }
        let _ = dim;
        Kernels::for_isa(*isas.last().unwrap_or(&Isa::Portable))
    }

    /// Kernels for a given ISA. Only ISAs returned by `Isa::available` are
    /// safe to run; anything else falls back to portable.
    pub fn for_isa(isa: Isa) -> Kernels {
        if !Isa::available().contains(&isa) {
            return Kernels { isa: Isa::Portable, dot: dot_portable, l2sq: l2sq_portable };
        }
        match isa {
            Isa::Portable => Kernels { isa, dot: dot_portable, l2sq: l2sq_portable },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Kernels { isa, dot: x86::dot_avx2, l2sq: x86::l2sq_avx2 },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Kernels { isa, dot: x86::dot_avx512, l2sq: x86::l2sq_avx512 },
        }
    }

    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: both slices hold at least `n` elements and this `Kernels`
        // value was built only for an ISA the CPU reported.
        unsafe { (self.dot)(a.as_ptr(), b.as_ptr(), n) }
    }

    #[inline]
    pub fn l2sq(&self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: as in `dot`.
        unsafe { (self.l2sq)(a.as_ptr(), b.as_ptr(), n) }
    }

    pub fn raw_dot(&self) -> RawKernel {
        self.dot
    }

    pub fn raw_l2sq(&self) -> RawKernel {
        self.l2sq
    }
}

/// Portable dot product. Eight independent accumulators break the add
/// dependency chain, and the fixed-width inner block lets LLVM turn it into
/// SSE (or NEON on aarch64) without needing `-ffast-math`-style reassociation.
///
/// # Safety
/// `a` and `b` must be valid for `n` reads.
pub unsafe fn dot_portable(a: *const f32, b: *const f32, n: usize) -> f32 {
    let a = std::slice::from_raw_parts(a, n);
    let b = std::slice::from_raw_parts(b, n);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Portable squared L2 distance; same structure as `dot_portable`.
///
/// # Safety
/// `a` and `b` must be valid for `n` reads.
pub unsafe fn l2sq_portable(a: *const f32, b: *const f32, n: usize) -> f32 {
    let a = std::slice::from_raw_parts(a, n);
    let b = std::slice::from_raw_parts(b, n);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = x - y;
        tail += d * d;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Lane masks for `_mm256_maskload_ps`: row `r` enables the first `r` lanes.
    static TAIL_MASK: [[i32; 8]; 8] = {
        let mut m = [[0i32; 8]; 8];
        let mut r = 0;
        while r < 8 {
            let mut i = 0;
            while i < r {
                m[r][i] = -1;
                i += 1;
            }
            r += 1;
        }
        m
    };

    #[inline(always)]
    unsafe fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }

    /// AVX2 dot product: four 8-lane accumulators (32 floats per step) keep
    /// both FMA pipes busy; the last partial vector is read with a masked
    /// load so short and odd dimensions never fall back to scalar code.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
        let mut s0 = _mm256_setzero_ps();
        let mut s1 = _mm256_setzero_ps();
        let mut s2 = _mm256_setzero_ps();
        let mut s3 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i + 8)), _mm256_loadu_ps(b.add(i + 8)), s1);
            s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i + 16)), _mm256_loadu_ps(b.add(i + 16)), s2);
            s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i + 24)), _mm256_loadu_ps(b.add(i + 24)), s3);
            i += 32;
        }
        while i + 8 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), s0);
            i += 8;
        }
        if i < n {
            let m = _mm256_loadu_si256(TAIL_MASK[n - i].as_ptr() as *const __m256i);
            s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a.add(i), m), _mm256_maskload_ps(b.add(i), m), s1);
        }
        hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2sq_avx2(a: *const f32, b: *const f32, n: usize) -> f32 {
        let mut s0 = _mm256_setzero_ps();
        let mut s1 = _mm256_setzero_ps();
        let mut s2 = _mm256_setzero_ps();
        let mut s3 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
            let d1 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i + 8)), _mm256_loadu_ps(b.add(i + 8)));
            let d2 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i + 16)), _mm256_loadu_ps(b.add(i + 16)));
            let d3 = _mm256_sub_ps(_mm256_loadu_ps(a.add(i + 24)), _mm256_loadu_ps(b.add(i + 24)));
            s0 = _mm256_fmadd_ps(d0, d0, s0);
            s1 = _mm256_fmadd_ps(d1, d1, s1);
            s2 = _mm256_fmadd_ps(d2, d2, s2);
            s3 = _mm256_fmadd_ps(d3, d3, s3);
            i += 32;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
            s0 = _mm256_fmadd_ps(d, d, s0);
            i += 8;
        }
        if i < n {
            let m = _mm256_loadu_si256(TAIL_MASK[n - i].as_ptr() as *const __m256i);
            let d = _mm256_sub_ps(_mm256_maskload_ps(a.add(i), m), _mm256_maskload_ps(b.add(i), m));
            s1 = _mm256_fmadd_ps(d, d, s1);
        }
        hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)))
    }

    /// AVX-512 dot product: four 16-lane accumulators, masked tail.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: *const f32, b: *const f32, n: usize) -> f32 {
        let mut s0 = _mm512_setzero_ps();
        let mut s1 = _mm512_setzero_ps();
        let mut s2 = _mm512_setzero_ps();
        let mut s3 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 64 <= n {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i + 16)), _mm512_loadu_ps(b.add(i + 16)), s1);
            s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i + 32)), _mm512_loadu_ps(b.add(i + 32)), s2);
            s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i + 48)), _mm512_loadu_ps(b.add(i + 48)), s3);
            i += 64;
        }
        while i + 16 <= n {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), s0);
            i += 16;
        }
        if i < n {
            let m: __mmask16 = (1u16 << (n - i)) - 1;
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a.add(i)), _mm512_maskz_loadu_ps(m, b.add(i)), s1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn l2sq_avx512(a: *const f32, b: *const f32, n: usize) -> f32 {
        let mut s0 = _mm512_setzero_ps();
        let mut s1 = _mm512_setzero_ps();
        let mut s2 = _mm512_setzero_ps();
        let mut s3 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 64 <= n {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            let d1 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i + 16)), _mm512_loadu_ps(b.add(i + 16)));
            let d2 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i + 32)), _mm512_loadu_ps(b.add(i + 32)));
            let d3 = _mm512_sub_ps(_mm512_loadu_ps(a.add(i + 48)), _mm512_loadu_ps(b.add(i + 48)));
            s0 = _mm512_fmadd_ps(d0, d0, s0);
            s1 = _mm512_fmadd_ps(d1, d1, s1);
            s2 = _mm512_fmadd_ps(d2, d2, s2);
            s3 = _mm512_fmadd_ps(d3, d3, s3);
            i += 64;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            s0 = _mm512_fmadd_ps(d, d, s0);
            i += 16;
        }
        if i < n {
            let m: __mmask16 = (1u16 << (n - i)) - 1;
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a.add(i)), _mm512_maskz_loadu_ps(m, b.add(i)));
            s1 = _mm512_fmadd_ps(d, d, s1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
    }
}

/// Hint the CPU to start loading the cache line at `p`. A no-op where no
/// prefetch instruction is available.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    fn naive_l2sq(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum()
    }

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        // Relative to the sum of absolute terms: different summation orders
        // of f32 products differ by a few ulps of that magnitude.
        (got as f64 - want).abs() <= 1e-5 * scale.max(1.0)
    }

    #[test]
    fn every_kernel_matches_naive_for_all_small_and_odd_dims() {
        let isas = Isa::available();
        assert!(isas.contains(&Isa::Portable));
        for isa in isas {
            let k = Kernels::for_isa(isa);
            assert_eq!(k.isa, isa);
            for n in 1..=1030usize {
                // Offsets by one float so unaligned starts are exercised.
                let a = data(n + 1, n as u64);
                let b = data(n + 1, 7 * n as u64 + 3);
                let (a, b) = (&a[1..], &b[..n]);
                let scale: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
                let d = k.dot(a, b);
                assert!(close(d, naive_dot(a, b), scale), "{} dot n={n}: {d} vs {}", isa.name(), naive_dot(a, b));
                let l = k.l2sq(a, b);
                let want = naive_l2sq(a, b);
                assert!(close(l, want, want), "{} l2sq n={n}: {l} vs {want}", isa.name());
            }
        }
    }

    #[test]
    fn kernels_handle_zero_length_and_identical_inputs() {
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa);
            assert_eq!(k.dot(&[], &[]), 0.0);
            assert_eq!(k.l2sq(&[], &[]), 0.0);
            let a = data(77, 9);
            assert_eq!(k.l2sq(&a, &a), 0.0, "{}", isa.name());
        }
    }

    #[test]
    fn detect_picks_the_widest_available() {
        let k = Kernels::detect();
        assert_eq!(Some(&k.isa), Isa::available().last());
    }
}
