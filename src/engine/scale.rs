//! The value scale a heatmap is painted on, and what its colours mean. A map is never stretched to
//! its own extremes: attention is painted from 0 to at least a few times the uniform weight, an
//! occlusion map from 0 to at least a fixed drop, so a near-uniform map looks near-uniform.

/// Attention maps are painted up to at least this many times the uniform weight 1/k.
const ATTENTION_FLOOR: f32 = 4.0;
/// Occlusion maps (drops of a cosine) are painted up to at least this drop.
pub const OCCLUSION_FLOOR: f32 = 0.05;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HeatScale {
    pub lo: f32,
    pub hi: f32,
    /// Where a uniform map would sit, when the map is a distribution.
    pub uniform: Option<f32>,
    /// What the colours mean, for the colour bar's title.
    pub meaning: String,
}

impl HeatScale {
    /// Distributions over `cells` cells: 0 … max(peak, 4/cells), the uniform weight marked.
    pub fn attention<'a>(maps: impl IntoIterator<Item = &'a [f32]>, cells: usize, meaning: impl Into<String>) -> Self {
        let uniform = 1.0 / cells.max(1) as f32;
        Self { lo: 0.0, hi: peak(maps).max(ATTENTION_FLOOR * uniform), uniform: Some(uniform), meaning: meaning.into() }
    }

    /// Drops of a score when a cell is hidden: 0 … max(peak, `OCCLUSION_FLOOR`); a rise (negative
    /// drop) is painted as 0.
    pub fn occlusion<'a>(maps: impl IntoIterator<Item = &'a [f32]>, meaning: impl Into<String>) -> Self {
        Self { lo: 0.0, hi: peak(maps).max(OCCLUSION_FLOOR), uniform: None, meaning: meaning.into() }
    }

    /// Gradient × activation maps (non-negative, in the activation's units): 0 … the peak, which
    /// no fixed floor makes comparable between photos; a map of zeros stays dark.
    pub fn gradient<'a>(maps: impl IntoIterator<Item = &'a [f32]>, meaning: impl Into<String>) -> Self {
        Self { lo: 0.0, hi: peak(maps).max(f32::EPSILON), uniform: None, meaning: meaning.into() }
    }

    /// Position of `v` on the colour bar, in [0, 1].
    pub fn position(&self, v: f32) -> f32 {
        let t = (v - self.lo) / (self.hi - self.lo).max(f32::EPSILON);
        if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) }
    }
}

fn peak<'a>(maps: impl IntoIterator<Item = &'a [f32]>) -> f32 {
    maps.into_iter().flat_map(|m| m.iter().copied()).filter(|v| v.is_finite()).fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_uniform_attention_map_is_painted_dim() {
        let near_uniform: Vec<f32> = (0..49).map(|i| if i == 0 { 0.021 } else { (1.0 - 0.021) / 48.0 }).collect();
        let s = HeatScale::attention([near_uniform.as_slice()], 49, "attention");
        assert!(s.position(0.021) < 0.3, "{s:?}");
        assert_eq!(s.uniform, Some(1.0 / 49.0));
        let peaked: Vec<f32> = (0..49).map(|i| if i == 3 { 0.9 } else { 0.1 / 48.0 }).collect();
        let s = HeatScale::attention([peaked.as_slice()], 49, "attention");
        assert_eq!(s.position(0.9), 1.0);
    }

    #[test]
    fn occlusion_drops_below_the_floor_stay_dim_and_rises_read_as_zero() {
        let s = HeatScale::occlusion([[0.01f32, -0.2, 0.005].as_slice()], "drop");
        assert_eq!(s.hi, OCCLUSION_FLOOR);
        assert!(s.position(0.01) <= 0.2);
        assert_eq!(s.position(-0.2), 0.0);
        let s = HeatScale::occlusion([[0.3f32, 0.1].as_slice()], "drop");
        assert_eq!((s.position(0.3), s.position(f32::NAN)), (1.0, 0.0));
    }
}
