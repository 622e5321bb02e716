//! The colormap of every heatmap (viridis: perceptually uniform, readable in grey and by most
//! colour-blind viewers), shared by exported PNGs and the app.

/// Viridis sampled at 9 evenly spaced stops; linear interpolation between them.
const STOPS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// The colour of `t` in [0, 1] (clamped; NaN reads as 0).
pub fn viridis(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    [0, 1, 2].map(|c| (a[c] as f32 + (b[c] as f32 - a[c] as f32) * f).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_clamping() {
        assert_eq!(viridis(0.0), STOPS[0]);
        assert_eq!(viridis(1.0), STOPS[8]);
        assert_eq!(viridis(-3.0), STOPS[0]);
        assert_eq!(viridis(7.0), STOPS[8]);
        assert_eq!(viridis(f32::NAN), STOPS[0]);
        assert_eq!(viridis(0.5), STOPS[4]);
    }

    #[test]
    fn brightness_rises_with_the_value() {
        let luma = |c: [u8; 3]| 0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32;
        let l: Vec<f32> = (0..=20).map(|i| luma(viridis(i as f32 / 20.0))).collect();
        assert!(l.windows(2).all(|w| w[1] > w[0]), "{l:?}");
    }
}
