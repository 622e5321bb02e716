//! The same burn op gives the same numbers on wgpu and on flex, and the headless backend choice
//! follows the fallback rule on this machine's real adapter.

mod common;

use alignscope::engine::backend::{Backend, BackendRequest, Compute, probe_adapter};
use alignscope::engine::doctor::smoke_op;

#[test]
fn matmul_softmax_agrees_between_wgpu_and_flex() {
    if probe_adapter().is_none() {
        return common::skip_or_fail("a wgpu adapter (Vulkan: mesa-vulkan-drivers libvulkan1)");
    }
    let wgpu = Compute::headless(BackendRequest::Wgpu).expect("wgpu device");
    assert_eq!(wgpu.decision.backend, Backend::Wgpu);
    let flex = Compute::flex("test");
    // 24×24 inputs: 576 elements per operand, a few hundred softmax rows' worth of work.
    let on_wgpu = smoke_op(&wgpu.device, 24);
    let on_flex = smoke_op(&flex.device, 24);
    assert_eq!(on_wgpu.len(), 24 * 24);
    assert_eq!(on_wgpu.len(), on_flex.len());
    let max_diff = on_wgpu.iter().zip(&on_flex).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff <= 1e-4, "wgpu and flex differ by {max_diff}");
    // Softmax rows sum to one: the op really ran.
    for row in on_flex.chunks(24) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}

#[test]
fn auto_backend_matches_the_adapter_kind() {
    let compute = Compute::headless(BackendRequest::Auto).expect("auto never fails");
    match &compute.adapter {
        Some(a) if a.is_software() => assert_eq!(compute.decision.backend, Backend::Flex, "{}", compute.describe()),
        Some(_) => assert_eq!(compute.decision.backend, Backend::Wgpu, "{}", compute.describe()),
        None => assert_eq!(compute.decision.backend, Backend::Flex),
    }
    assert_eq!(smoke_op(&compute.device, 8).len(), 64);
}
