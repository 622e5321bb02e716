//! The detector's objects beside an explanation: which detected object a word's map falls on.
//! A map over grid cells is averaged inside each object's box (cells weighted by how much of
//! them the box covers) and compared with the map's mean over the whole photo: above 1, the
//! word's relevance concentrates on that object.

use std::path::Path;

use crate::features::detections::{Detection, area, overlap};
use crate::features::detector::{DETECTOR_WEIGHTS, Detector, MIN_SCORE};

/// The detector, if its weights are there (loaded once per process and device).
pub fn load_detector(device: &burn::tensor::Device) -> Result<Detector, String> {
    let path = crate::features::models_dir().join(DETECTOR_WEIGHTS);
    Detector::load(&path, device).map_err(|e| e.to_string())
}

/// The objects in one photo (score ≥ [`MIN_SCORE`]), best first.
pub fn objects_in(detector: &Detector, photo: &image::DynamicImage, device: &burn::tensor::Device) -> Vec<Detection> {
    detector.detect(std::slice::from_ref(photo), MIN_SCORE, device).pop().unwrap_or_default()
}

/// How much of `values` (one per cell, cells' boxes in photo pixels, the photo `size` pixels)
/// lies in each object, as the in-box mean over the whole photo's mean; 0 where the map is
/// empty.
pub fn share_in_objects(cells: &[[f32; 4]], values: &[f32], size: [u32; 2], objects: &[Detection]) -> Vec<f32> {
    let [w, h] = size.map(|v| v.max(1) as f32);
    let cell_area: f32 = cells.iter().map(|c| area(*c)).sum();
    let mean = cells.iter().zip(values).map(|(c, v)| area(*c) * v).sum::<f32>() / cell_area.max(f32::MIN_POSITIVE);
    objects
        .iter()
        .map(|o| {
            let b = [o.bbox[0] * w, o.bbox[1] * h, o.bbox[2] * w, o.bbox[3] * h];
            let (mut covered, mut sum) = (0.0f32, 0.0f32);
            for (c, v) in cells.iter().zip(values) {
                let shared = overlap(*c, b);
                covered += shared;
                sum += shared * v;
            }
            if covered > 0.0 && mean > 0.0 { sum / covered / mean } else { 0.0 }
        })
        .collect()
}

/// A photo's objects as text lines: label, score and box in pixels.
pub fn describe(objects: &[Detection], size: [u32; 2], path: &Path) -> String {
    let [w, h] = size.map(|v| v as f32);
    let mut out = format!(
        "{} ({}×{}): {} object{} (SSD-MobileNetV2 COCO, score ≥ {MIN_SCORE})\n",
        crate::data::path_text::shown(path),
        size[0],
        size[1],
        objects.len(),
        if objects.len() == 1 { "" } else { "s" }
    );
    for o in objects {
        let b = o.bbox;
        out.push_str(&format!(
            "  {:5.1}%  {:14}  box ({:.0}, {:.0}) – ({:.0}, {:.0}) px\n",
            o.score * 100.0,
            o.label,
            b[0] * w,
            b[1] * h,
            b[2] * w,
            b[3] * h
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_on_the_left_half_concentrates_on_an_object_there() {
        // 2×1 cells of a 200×100 photo: all relevance in the left cell.
        let cells = [[0.0, 0.0, 100.0, 100.0], [100.0, 0.0, 200.0, 100.0]];
        let obj = |x0: f32, x1: f32| Detection { label: "dog".into(), score: 0.9, bbox: [x0, 0.0, x1, 1.0] };
        let shares =
            share_in_objects(&cells, &[1.0, 0.0], [200, 100], &[obj(0.0, 0.5), obj(0.5, 1.0), obj(0.25, 0.75)]);
        assert_eq!(shares, vec![2.0, 0.0, 1.0]);
        assert_eq!(share_in_objects(&cells, &[0.0, 0.0], [200, 100], &[obj(0.0, 0.5)]), vec![0.0]);
    }
}
