//! Arithmetic the host passes on flex share (the backbones' `efficientnet::host` and
//! `minilm::host`, the networks' `model::racg::pairs` and `model::shan::pairs`): strided matrix
//! products through gemm, an exponential that vectorises, sums that vectorise, and functions
//! compiled for AVX2 where the CPU has it. It lives with the backbones because the layers below
//! (`model`) may use it and the backbones may not reach down to them.

/// `fn name(args) { body }`, with the body compiled twice, as built and for AVX2 + FMA, and the
/// second run where the CPU has them, so that its loops (and the `#[inline(always)]` helpers it
/// calls) vectorise 8 wide. (A closure passed into such a function is not compiled for it:
/// measured, RACG's pass ran at the baseline speed that way.)
macro_rules! vectorised_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the features `avx2` is compiled for (checked just above).
                unsafe { avx2($($arg),*) };
                return;
            }
            body($($arg),*)
        }
    };
}
pub(crate) use vectorised_fn;

/// Runs of consecutive captions holding at most `max` words in all (a longer caption alone), from
/// `starts` (caption c holds words `starts[c]..starts[c + 1]`): the groups a fused pass scores
/// against one photo at a time.
pub fn word_groups(starts: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let count = starts.len().saturating_sub(1);
    let mut groups = Vec::new();
    let mut start = 0;
    for c in 0..count {
        if c > start && starts[c + 1] - starts[start] > max {
            groups.push(start..c);
            start = c;
        }
    }
    if start < count {
        groups.push(start..count);
    }
    groups
}

/// Lanes of the partial sums in [`dot`] and [`sum`]: a float sum written as one chain cannot be
/// reordered by the compiler, so it runs one add at a time (measured: SHAN's pass spent 40 of its
/// 59 s in such chains of 512); sixteen independent ones vectorise.
const LANES: usize = 16;

/// Σ a·b over the shorter length, in [`LANES`] partial sums.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ a, in [`LANES`] partial sums.
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// e^x for x ≤ 0, to about 2e-7 relative, in arithmetic that vectorises (f32::exp is a call per
/// element): x = n ln 2 + r with n whole and |r| ≤ ½ ln 2 (ln 2 in two parts, so r is exact);
/// e^r by its Taylor series to degree 7; 2^n put into the exponent bits. Below −87 it returns 0.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    const C: [f32; 8] = [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
    let p = C[0] + r * (C[1] + r * (C[2] + r * (C[3] + r * (C[4] + r * (C[5] + r * (C[6] + r * C[7]))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x <= -87.0 { 0.0 } else { p * scale }
}

/// out [rows, cols] (row-major) = lhs [rows, depth] · rhs [depth, cols], each operand given as
/// (values, row stride, column stride); `parallel` lets gemm use rayon's threads (only from
/// outside a rayon task).
pub fn matmul(
    out: &mut [f32],
    [rows, cols, depth]: [usize; 3],
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallel: bool,
) {
    let last = |(values, rs, cs): (&[f32], usize, usize), r: usize, c: usize| {
        assert!(r == 0 || c == 0 || (r - 1) * rs + (c - 1) * cs < values.len(), "operand out of bounds");
    };
    last(lhs, rows, depth);
    last(rhs, depth, cols);
    assert!(out.len() >= rows * cols, "output out of bounds");
    if rows == 0 || cols == 0 {
        return;
    }
    if depth == 0 {
        out[..rows * cols].iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: every element gemm reads or writes lies inside the slices (the bounds asserted
    // above for these strides), and `out` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            depth,
            out.as_mut_ptr(),
            1,
            cols as isize,
            false,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library_on_the_range_it_serves() {
        let worst = (0..=200_000)
            .map(|i| -86.0 * i as f32 / 200_000.0)
            .map(|x| ((exp_nonpositive(x) - x.exp()) / x.exp()).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert_eq!(exp_nonpositive(-87.0), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn dot_and_sum_add_every_element_whatever_the_length() {
        for n in [0, 1, 15, 16, 17, 49, 512, 515] {
            let a: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), want, "dot, n = {n}");
            assert_eq!(sum(&a), a.iter().sum::<f32>(), "sum, n = {n}");
        }
    }

    #[test]
    fn strided_products_read_rows_and_columns_as_given() {
        // a [2, 3]; b [2, 3] read transposed (row stride 1, column stride 3) → a · bᵀ [2, 2].
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let mut out = [0.0f32; 4];
        matmul(&mut out, [2, 2, 3], (&a, 3, 1), (&b, 1, 3), false);
        assert_eq!(out, [4.0, 2.0, 10.0, 5.0]);
    }
}
