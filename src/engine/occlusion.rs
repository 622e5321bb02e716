//! Occlusion: what a pair's score and each word's alignment lose when one cell of the photo is
//! greyed out; and its converse, windows: what they gain over a grey canvas when only a block of
//! cells is shown. Faithful by construction (the map is the model's own response to hiding a part of
//! the photo), at the cost of one backbone pass per cell. On a 7×7 grid of a 224-px photo every
//! feature cell sees nearly the whole photo, so the network's own word→region attention cannot
//! say where a word is; hiding pixels can.

use image::RgbImage;

/// Cells a window shows along each side (3 of 7: 96 px of a 224-px photo).
pub const WINDOW: usize = 3;

/// Mid-grey: 0 after the backbone's scaling to [-1, 1], so a hidden cell adds no signal.
const GREY: [u8; 3] = [128, 128, 128];

/// The square model input with cell `cell` of a `grid`×`grid` partition greyed out.
pub fn hide_cell(input: &RgbImage, grid: usize, cell: usize) -> RgbImage {
    hide_cells(input, grid, &[cell])
}

/// The square model input with `cells` (row-major over the grid) greyed out.
pub fn hide_cells(input: &RgbImage, grid: usize, cells: &[usize]) -> RgbImage {
    let mut out = input.clone();
    let (w, h) = (input.width() as usize, input.height() as usize);
    for &cell in cells {
        let (r, c) = (cell / grid, cell % grid);
        let (x0, x1) = (c * w / grid, (c + 1) * w / grid);
        let (y0, y1) = (r * h / grid, (r + 1) * h / grid);
        for y in y0..y1 {
            for x in x0..x1 {
                out.put_pixel(x as u32, y as u32, image::Rgb(GREY));
            }
        }
    }
    out
}

/// The input followed by each of its `grid`² occluded copies: what one occlusion pass scores.
pub fn occluded_inputs(input: &RgbImage, grid: usize) -> Vec<RgbImage> {
    std::iter::once(input.clone()).chain((0..grid * grid).map(|cell| hide_cell(input, grid, cell))).collect()
}

/// The input shown through each `size`×`size` window of cells (stride one cell, row-major),
/// everything else greyed out: (grid − size + 1)² inputs.
pub fn windowed_inputs(input: &RgbImage, grid: usize, size: usize) -> Vec<RgbImage> {
    let n = grid + 1 - size.clamp(1, grid);
    (0..n * n)
        .map(|w| {
            let (r, c) = (w / n, w % n);
            let hidden: Vec<usize> = (0..grid * grid)
                .filter(|&cell| !(r..r + size).contains(&(cell / grid)) || !(c..c + size).contains(&(cell % grid)))
                .collect();
            hide_cells(input, grid, &hidden)
        })
        .collect()
}

/// The input fully greyed out, then shown through each window: what one window pass scores
/// (the grey canvas is the baseline a window's gain is measured from).
pub fn window_pass_inputs(input: &RgbImage, grid: usize, size: usize) -> Vec<RgbImage> {
    let all: Vec<usize> = (0..grid * grid).collect();
    std::iter::once(hide_cells(input, grid, &all)).chain(windowed_inputs(input, grid, size)).collect()
}

/// Per window, how much `scores` (the grey canvas's first, then one per window) rise over the canvas.
pub fn gains(scores: &[f32]) -> Vec<f32> {
    drops(scores).into_iter().map(|d| -d).collect()
}

/// Per cell, the mean score of the windows (of [`windowed_inputs`]) that show it.
pub fn window_map(scores: &[f32], grid: usize, size: usize) -> Vec<f32> {
    let size = size.clamp(1, grid);
    let n = grid + 1 - size;
    (0..grid * grid)
        .map(|cell| {
            let (r, c) = (cell / grid, cell % grid);
            let showing: Vec<f32> = (0..n * n)
                .filter(|w| (w / n..w / n + size).contains(&r) && (w % n..w % n + size).contains(&c))
                .map(|w| scores[w])
                .collect();
            showing.iter().sum::<f32>() / showing.len().max(1) as f32
        })
        .collect()
}

/// Per cell, how much `scores` (the unoccluded input's first, then one per occluded cell) drop.
pub fn drops(scores: &[f32]) -> Vec<f32> {
    let base = scores.first().copied().unwrap_or(0.0);
    scores.iter().skip(1).map(|s| base - s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_exactly_one_cell() {
        let input = RgbImage::from_pixel(224, 224, image::Rgb([10, 200, 30]));
        let out = hide_cell(&input, 7, 8); // row 1, column 1: pixels 32..64
        assert_eq!(out.get_pixel(32, 32).0, GREY);
        assert_eq!(out.get_pixel(63, 63).0, GREY);
        assert_eq!(out.get_pixel(64, 63).0, [10, 200, 30]);
        assert_eq!(out.get_pixel(31, 40).0, [10, 200, 30]);
        let grey = out.pixels().filter(|p| p.0 == GREY).count();
        assert_eq!(grey, 32 * 32);
        assert_eq!(occluded_inputs(&input, 7).len(), 50);
    }

    #[test]
    fn windows_show_their_cells_only_and_maps_average_the_windows_showing_a_cell() {
        let input = RgbImage::from_pixel(224, 224, image::Rgb([10, 200, 30]));
        let windows = windowed_inputs(&input, 7, 3);
        assert_eq!(windows.len(), 25);
        // Window 6 = row 1, column 1: cells rows 1..4, columns 1..4 visible.
        assert_eq!(windows[6].get_pixel(40, 40).0, [10, 200, 30]);
        assert_eq!(windows[6].get_pixel(127, 127).0, [10, 200, 30]);
        assert_eq!(windows[6].get_pixel(128, 127).0, GREY);
        assert_eq!(windows[6].get_pixel(20, 40).0, GREY);
        let scores: Vec<f32> = (0..25).map(|w| w as f32).collect();
        let map = window_map(&scores, 7, 3);
        assert_eq!(map[0], 0.0, "only window 0 shows the corner");
        assert_eq!(map[48], 24.0);
        assert_eq!(map[24], (6..=8).chain(11..=13).chain(16..=18).sum::<usize>() as f32 / 9.0);
    }

    #[test]
    fn drops_are_against_the_first_score() {
        assert_eq!(drops(&[0.5, 0.25, 0.75]), vec![0.25, -0.25]);
    }
}
