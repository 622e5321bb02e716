//! Near-duplicate photos: copies of one photo re-encoded, resized, slightly cropped or edited.
//! Two photos are near-duplicates when the cosine of their global-model embeddings (kept in the
//! folder's index) is at least [`THRESHOLD`]; groups are the connected pairs. `alignscope bench
//! duplicates` measured the embedding and the threshold on Flickr8k test photos and altered
//! copies of them (it separated copies from other photos slightly better than SHAN's).

use rayon::prelude::*;

/// The cosine at or above which two photos are near-duplicates. Measured by `bench duplicates`
/// (docs/RESULTS.md): it groups 298 of 400 altered copies (JPEG q30, half size, 90 % crop,
/// brightened) of 100 Flickr8k test photos with their original and joins none of the 1,000 test
/// photos to another (the closest other pair: 0.84).
pub const THRESHOLD: f32 = 0.85;

/// For each photo of `embeddings` ([n, dim], unit rows), the first photo of its group of
/// near-duplicates (itself when it has none): pairs with a cosine ≥ `threshold`, joined
/// transitively.
pub fn groups(embeddings: &[f32], dim: usize, threshold: f32) -> Vec<usize> {
    let n = embeddings.len().checked_div(dim).unwrap_or(0);
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    // Each photo's near-duplicates after it (the pairwise cosines in parallel, rows by rows).
    let pairs: Vec<Vec<usize>> = (0..n)
        .into_par_iter()
        .map(|i| (i + 1..n).filter(|&j| super::fused::dot(row(i), row(j)) >= threshold).collect())
        .collect();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, js) in pairs.iter().enumerate() {
        for &j in js {
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            // The smaller index leads, so a group's id is its first photo.
            parent[a.max(b)] = a.min(b);
        }
    }
    (0..n).map(|i| root(&mut parent, i)).collect()
}

/// Which photos to hide when near-duplicates are hidden, in the display `order`: every photo
/// whose group was already shown earlier in that order (the best-ranked copy stays). Returns
/// the hidden flags (by photo) and, per shown photo, how many of its copies are hidden.
pub fn hidden_in_order(group: &[usize], order: &[usize]) -> (Vec<bool>, Vec<usize>) {
    let mut hidden = vec![false; group.len()];
    let mut copies = vec![0usize; group.len()];
    let mut shown_of_group: std::collections::HashMap<usize, usize> = Default::default();
    for &i in order {
        let Some(&g) = group.get(i) else { continue };
        match shown_of_group.get(&g) {
            Some(&first) => {
                hidden[i] = true;
                copies[first] += 1;
            }
            None => {
                shown_of_group.insert(g, i);
            }
        }
    }
    (hidden, copies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn close_photos_group_transitively_and_the_best_ranked_copy_stays() {
        // 0 ≈ 2 ≈ 3 (a chain), 1 alone.
        let e: Vec<f32> =
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.3, 0.0], [1.0, 0.6, 0.0]].iter().flat_map(|v| unit(v)).collect();
        let g = groups(&e, 3, 0.95);
        assert_eq!(g, vec![0, 1, 0, 0]);
        // Displayed as 3, 1, 0, 2: photo 3 is the group's best-ranked copy.
        let (hidden, copies) = hidden_in_order(&g, &[3, 1, 0, 2]);
        assert_eq!(hidden, vec![true, false, true, false]);
        assert_eq!(copies, vec![0, 0, 0, 2]);
        assert_eq!(groups(&e, 3, 0.999), vec![0, 1, 2, 3], "a higher threshold leaves them apart");
        assert!(groups(&[], 3, 0.9).is_empty());
    }
}
