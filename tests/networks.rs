//! The four networks the app compares (SHAN, global, DSRAN, RACG), with the committed weights,
//! rank a tiny fixture of the demo photos: each caption's photo in the top two of five under every
//! network, and first for most captions. (The networks learned from Flickr8k: people, animals,
//! outdoor scenes; the captions stay in that vocabulary.)

mod common;

use alignscope::data::decode::decode_oriented;
use alignscope::engine::backend::Compute;
use alignscope::engine::rank::{Ranker, RankerModel};
use alignscope::engine::runtime::Runtime;
use alignscope::engine::search::score_sides;

const PHOTOS: [&str; 5] = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "camera.jpg", "astronaut.jpg"];
/// A caption for some of the photos (index into PHOTOS), in Flickr8k's vocabulary.
const CAPTIONS: [(&str, usize); 4] = [
    ("a cat lying on a rug", 0),
    ("a man holding a camera", 3),
    ("a smiling woman in an orange suit", 4),
    ("a tall tower lit up at night", 2),
];

fn ranks(scores: &[f32], gt: usize) -> usize {
    scores.iter().filter(|&&s| s > scores[gt]).count() + 1
}

#[test]
fn every_network_ranks_each_captions_photo_near_the_top() {
    let compute = Compute::flex("test");
    let ranker = Ranker::load(&compute).expect("the committed global/DSRAN/RACG weights load");
    assert!(ranker.dsran.is_some(), "DSRAN: {:?}", ranker.dsran_missing);
    assert!(ranker.racg.is_some(), "RACG: {:?}", ranker.racg_missing);
    let runtime = Runtime::load(&compute, &alignscope::nets::shan::default_path(), "efficientnet-lite0")
        .expect("the committed SHAN loads");
    let photos: Vec<_> =
        PHOTOS.iter().map(|p| decode_oriented(&common::repo_path("assets/demo").join(p)).unwrap()).collect();
    let embedded = ranker.embed_images(&photos);
    let sides: Vec<_> = photos.iter().map(|p| runtime.image_side(p)).collect();
    let mut report = String::new();
    let mut wrong = Vec::new();
    let mut firsts = std::collections::HashMap::<&str, usize>::new();
    for (caption, gt) in CAPTIONS {
        let (q, _) = ranker.embed_caption(caption).unwrap();
        let mut per_network: Vec<(&str, Vec<f32>)> = RankerModel::ALL
            .into_iter()
            .map(|m| {
                let scores = match m {
                    RankerModel::Racg => {
                        let graphs: Vec<&[f32]> = embedded.iter().map(|e| e.racg.as_deref().unwrap()).collect();
                        ranker.racg_scores(&graphs, q.racg.as_deref().unwrap())
                    }
                    m => embedded.iter().map(|e| m.cosine(e, &q).unwrap()).collect(),
                };
                (m.name(), scores)
            })
            .collect();
        let (txt, _) = runtime.text_side(caption).unwrap();
        per_network.push(("SHAN", score_sides(&runtime, &sides, &txt)));
        for (name, scores) in per_network {
            assert_eq!(scores.len(), PHOTOS.len(), "{name}");
            assert!(scores.iter().all(|s| s.is_finite()), "{name}: {scores:?}");
            let rank = ranks(&scores, gt);
            report.push_str(&format!(
                "{name:6} \u{201c}{caption}\u{201d}: {} ranked #{rank}  {scores:.3?}\n",
                PHOTOS[gt]
            ));
            if rank > 2 {
                wrong.push(format!("{name}: {caption} (#{rank})"));
            }
            *firsts.entry(name).or_default() += usize::from(rank == 1);
        }
    }
    eprintln!("{report}");
    assert!(wrong.is_empty(), "not in the top two: {wrong:?}\n{report}");
    assert_eq!(firsts.len(), 4);
    for (name, n) in firsts {
        assert!(
            2 * n > CAPTIONS.len(),
            "{name} ranks the right photo first for only {n} of {} captions\n{report}",
            CAPTIONS.len()
        );
    }
}

/// The committed global model is the fine-tuned one, and the app's embeddings of it (photos in
/// micro-batches, captions padded together, the fine-tuned MiniLM layer run beside the frozen one
/// in one pass) equal what `eval` computes: one photo's activation through its own top, one
/// caption's hidden states through its own last layer.
#[test]
fn the_apps_global_embeddings_are_the_evaluated_models() {
    use alignscope::features::minilm::TokenBatch;
    use alignscope::features::{preprocess, values};
    use alignscope::nets::TEXT_TOP_LAYER;
    use alignscope::nets::global_tuned::AnyGlobal;
    use alignscope::nets::shan::CaptionBatch;
    let compute = Compute::flex("test");
    let ranker = Ranker::load(&compute).unwrap();
    let AnyGlobal::Tuned(net) = &ranker.global else { panic!("the committed global model has no fine-tuned tops") };
    let close = |a: &[f32], b: &[f32], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}");
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: max difference {worst}");
    };
    let photos: Vec<_> =
        PHOTOS.iter().map(|p| decode_oriented(&common::repo_path("assets/demo").join(p)).unwrap()).collect();
    let size = ranker.visual.image_size();
    for (photo, app) in photos.iter().zip(ranker.embed_images(&photos)) {
        let x = preprocess::batch(&[preprocess::resize_square(photo, size)], &ranker.device);
        let alone = values(net.embed_entering(ranker.visual.net.features_until(x, net.visual.first_block)));
        close(&app.global, &alone, "photo");
    }
    let captions = ["a dog", "a man in a red shirt is climbing a rock wall", "two children play on the beach"];
    for (caption, app) in captions.iter().zip(ranker.embed_captions(&captions)) {
        let ids = ranker.text.tokenizer.tokenize(caption).unwrap().ids;
        let tokens = TokenBatch::new(&[ids], ranker.text.tokenizer.pad_id(), &ranker.device);
        let n = tokens.ids.dims()[1];
        let hidden = ranker.text.model.hidden_until(&tokens, TEXT_TOP_LAYER);
        let alone = values(net.embed_hidden(CaptionBatch { hidden, lengths: tokens.lengths, tokens: n }));
        close(&app.unwrap().0.global, &alone, caption);
    }
}
