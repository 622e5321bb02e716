//! What the SSD detector's raw outputs mean: its anchor boxes, box decoding and per-class
//! non-maximum suppression, as the TensorFlow Object Detection API's SSD post-processing does it
//! (ssd_anchor_generator, FasterRcnnBoxCoder, multiclass_non_max_suppression). Pure Rust on host
//! arrays; boxes are normalised `[y0, x0, y1, x1]` inside the detector (TF's order) and
//! `[x0, y0, x1, y1]` in a [`Detection`] (the order the rest of alignscope draws in).

/// One detected object: its COCO label, its score (a sigmoid, 0–1) and its box in normalised
/// photo coordinates `[x0, y0, x1, y1]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Detection {
    pub label: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// Anchor boxes of SSD's six feature maps (`sizes`, square maps, largest first), in the order the
/// box predictors' outputs are flattened: map, then row, column, then the map's anchor shapes.
/// Scales run from 0.2 to 0.95 over the maps; each map has aspect ratios 1, 2, ½, 3, ⅓ and one
/// box at the scale between its own and the next map's, except the first, which has three boxes
/// (0.1 at ratio 1; 0.2 at 2 and ½).
pub fn anchors(sizes: &[usize]) -> Vec<[f32; 4]> {
    let (min_scale, max_scale) = (0.2f32, 0.95f32);
    let n = sizes.len();
    let scale = |i: usize| {
        if i >= n { 1.0 } else { min_scale + (max_scale - min_scale) * i as f32 / (n.max(2) - 1) as f32 }
    };
    let mut out = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let s = scale(i);
        let shapes: Vec<(f32, f32)> = if i == 0 {
            vec![(0.1, 1.0), (s, 2.0), (s, 0.5)]
        } else {
            let mut v: Vec<(f32, f32)> = [1.0, 2.0, 0.5, 3.0, 1.0 / 3.0].iter().map(|&ratio| (s, ratio)).collect();
            v.push(((s * scale(i + 1)).sqrt(), 1.0));
            v
        };
        let step = 1.0 / size as f32;
        for row in 0..size {
            for col in 0..size {
                let (yc, xc) = ((row as f32 + 0.5) * step, (col as f32 + 0.5) * step);
                for &(scale, ratio) in &shapes {
                    let (h, w) = (scale / ratio.sqrt(), scale * ratio.sqrt());
                    out.push([yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0]);
                }
            }
        }
    }
    out
}

/// The box an anchor's regression codes `[ty, tx, th, tw]` describe (scale factors 10, 10, 5, 5).
pub fn decode(anchor: [f32; 4], codes: [f32; 4]) -> [f32; 4] {
    let (ha, wa) = (anchor[2] - anchor[0], anchor[3] - anchor[1]);
    let (yca, xca) = (anchor[0] + ha / 2.0, anchor[1] + wa / 2.0);
    let (yc, xc) = (codes[0] / 10.0 * ha + yca, codes[1] / 10.0 * wa + xca);
    let (h, w) = ((codes[2] / 5.0).exp() * ha, (codes[3] / 5.0).exp() * wa);
    [yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0]
}

/// A box's area (0 for an empty one), in either coordinate order.
pub fn area(b: [f32; 4]) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

/// The area two boxes share (same coordinate order).
pub fn overlap(a: [f32; 4], b: [f32; 4]) -> f32 {
    area([a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])])
}

/// Intersection over union of two boxes in the same coordinate order.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let inter = overlap(a, b);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// What SSD's post-processing keeps: per class, the boxes scoring at least `min_score`, clipped to
/// the photo (those left with no area dropped), greedily suppressed where they overlap a better
/// box of the class by IoU > `max_iou`; then all classes by score, at most `max_total`.
/// `boxes[a]` is anchor a's decoded box, `scores[a][c]` its sigmoid score for class c (0 is the
/// background, skipped); `labels[c]` names class c.
pub fn suppress(
    boxes: &[[f32; 4]],
    scores: &[Vec<f32>],
    labels: &[String],
    min_score: f32,
    max_iou: f32,
    max_total: usize,
) -> Vec<Detection> {
    let classes = scores.first().map_or(0, Vec::len);
    let mut kept: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for class in 1..classes {
        let mut candidates: Vec<(f32, [f32; 4])> = boxes
            .iter()
            .zip(scores)
            .filter(|(_, s)| s[class] >= min_score)
            .map(|(b, s)| (s[class], b.map(|v| v.clamp(0.0, 1.0))))
            .filter(|(_, b)| area(*b) > 0.0)
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut chosen: Vec<[f32; 4]> = Vec::new();
        for (score, b) in candidates {
            if chosen.iter().all(|c| iou(*c, b) <= max_iou) {
                chosen.push(b);
                kept.push((class, score, b));
            }
        }
    }
    kept.sort_by(|a, b| b.1.total_cmp(&a.1));
    kept.truncate(max_total);
    kept.into_iter()
        .map(|(class, score, b)| Detection {
            label: labels.get(class).cloned().unwrap_or_else(|| format!("class {class}")),
            score,
            bbox: [b[1], b[0], b[3], b[2]],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_ssd_mobilenet_v2() {
        // Values the TensorFlow graph computes (tests/fixtures/detector/tf-detections.json).
        let a = anchors(&[19, 10, 5, 3, 2, 1]);
        assert_eq!(a.len(), 1917);
        let close = |i: usize, want: [f32; 4]| {
            assert!(a[i].iter().zip(want).all(|(x, y)| (x - y).abs() < 1e-5), "anchor {i}: {:?} vs {want:?}", a[i]);
        };
        close(0, [-0.023684, -0.023684, 0.076316, 0.076316]);
        close(1, [-0.044395, -0.115106, 0.097026, 0.167737]);
        close(3, [-0.023684, 0.028947, 0.076316, 0.128947]);
        close(1083, [-0.125, -0.125, 0.225, 0.225]);
        close(1900, [0.467157, -0.315685, 1.032843, 0.815685]);
        close(1916, [0.01266, 0.01266, 0.98734, 0.98734]);
    }

    #[test]
    fn zero_codes_decode_to_the_anchor() {
        let anchor = [0.1, 0.2, 0.5, 0.4];
        let b = decode(anchor, [0.0; 4]);
        assert!(b.iter().zip(anchor).all(|(x, y)| (x - y).abs() < 1e-6));
        // tx = 10 moves the centre right by one anchor width.
        let moved = decode(anchor, [0.0, 10.0, 0.0, 0.0]);
        assert!((moved[1] - 0.4).abs() < 1e-6 && (moved[3] - 0.6).abs() < 1e-6);
    }

    #[test]
    fn suppression_keeps_the_best_of_overlapping_boxes_per_class() {
        let labels: Vec<String> = ["", "person", "dog"].iter().map(|s| s.to_string()).collect();
        let boxes = [[0.0, 0.0, 0.5, 0.5], [0.01, 0.0, 0.5, 0.5], [0.6, 0.6, 1.2, 0.9], [2.0, 2.0, 3.0, 3.0]];
        let scores = vec![vec![0.0, 0.9, 0.8], vec![0.0, 0.7, 0.1], vec![0.0, 0.5, 0.0], vec![0.0, 0.95, 0.0]];
        let d = suppress(&boxes, &scores, &labels, 0.3, 0.6, 100);
        let got: Vec<(&str, f32)> = d.iter().map(|d| (d.label.as_str(), d.score)).collect();
        // The second person box overlaps the first (suppressed); the dog is another class; the
        // box outside the photo has no area left once clipped.
        assert_eq!(got, vec![("person", 0.9), ("dog", 0.8), ("person", 0.5)]);
        assert_eq!(d[2].bbox, [0.6, 0.6, 0.9, 1.0], "clipped and in x0 y0 x1 y1 order");
        assert_eq!(suppress(&boxes, &scores, &labels, 0.3, 0.6, 2).len(), 2);
    }
}
