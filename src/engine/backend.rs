//! Which compute backend the model runs on, and the wgpu device it shares with the UI.
//!
//! The rule: a real GPU adapter runs burn on wgpu (sharing the device eframe created); a software
//! rasterizer (Mesa lavapipe / llvmpipe, device type `Cpu`) or no adapter at all falls back to
//! burn's CPU backend `flex`, which is much faster than compute shaders emulated on the CPU.
//! `--backend wgpu` overrides the fallback when a software adapter is all there is.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use burn::tensor::wgpu::{WgpuSetup, wgpu};

/// What the user asked for (`--backend`, or the saved setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackendRequest {
    /// wgpu on a hardware adapter, flex otherwise.
    #[default]
    Auto,
    /// wgpu on whatever adapter exists, software included.
    Wgpu,
    /// burn's CPU backend.
    Flex,
}

impl FromStr for BackendRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            // burn-ndarray is deprecated in burn 0.22; `ndarray` is kept as a name for the CPU path.
            "flex" | "cpu" | "ndarray" => Ok(Self::Flex),
            other => Err(format!("unknown backend `{other}` (expected auto, wgpu or flex)")),
        }
    }
}

impl fmt::Display for BackendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Wgpu => "wgpu",
            Self::Flex => "flex",
        })
    }
}

/// The backend actually in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Wgpu,
    Flex,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wgpu => "wgpu",
            Self::Flex => "flex (CPU)",
        })
    }
}

/// The parts of a wgpu adapter's description that decide the backend and that users need to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub device_type: wgpu::DeviceType,
    pub graphics_api: wgpu::Backend,
    pub driver: String,
    pub driver_info: String,
}

impl AdapterSummary {
    pub fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        Self {
            name: info.name,
            device_type: info.device_type,
            graphics_api: info.backend,
            driver: info.driver,
            driver_info: info.driver_info,
        }
    }

    /// A software rasterizer: compute shaders run on the CPU, slower than flex.
    pub fn is_software(&self) -> bool {
        self.device_type == wgpu::DeviceType::Cpu
    }

    pub fn kind_label(&self) -> &'static str {
        match self.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "software (CPU)",
            wgpu::DeviceType::Other => "other",
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {:?}", self.name, self.kind_label(), self.graphics_api)?;
        if !self.driver.is_empty() {
            write!(f, ", {} {}", self.driver, self.driver_info)?;
        }
        write!(f, ")")
    }
}

/// The outcome of [`decide`]: the backend and a sentence saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub backend: Backend,
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error(
        "--backend wgpu was requested but no wgpu adapter was found (install a Vulkan driver, e.g. `apt-get install mesa-vulkan-drivers libvulkan1`, or use --backend flex)"
    )]
    NoAdapter,
    #[error("could not create a wgpu device on {adapter}: {cause}")]
    Device { adapter: String, cause: String },
}

/// Pure decision rule, kept apart from any device so it can be tested on every machine.
pub fn decide(request: BackendRequest, adapter: Option<&AdapterSummary>) -> Result<Decision, BackendError> {
    let decision = |backend, reason: String| Ok(Decision { backend, reason });
    match (request, adapter) {
        (BackendRequest::Flex, _) => decision(Backend::Flex, "flex requested".into()),
        (BackendRequest::Wgpu, None) => Err(BackendError::NoAdapter),
        (BackendRequest::Wgpu, Some(a)) if a.is_software() => {
            decision(Backend::Wgpu, format!("wgpu forced on the software adapter {}", a.name))
        }
        (BackendRequest::Wgpu, Some(a)) => decision(Backend::Wgpu, format!("wgpu requested on {}", a.name)),
        (BackendRequest::Auto, None) => {
            decision(Backend::Flex, "no wgpu adapter found: falling back to flex (CPU)".into())
        }
        (BackendRequest::Auto, Some(a)) if a.is_software() => decision(
            Backend::Flex,
            format!("only a software adapter ({}): falling back to flex (CPU); --backend wgpu forces it", a.name),
        ),
        (BackendRequest::Auto, Some(a)) => decision(Backend::Wgpu, format!("GPU adapter {}", a.name)),
    }
}

/// The device descriptor both eframe and the headless path use: the adapter's own features and
/// limits, because burn needs SHADER_FLOAT32_ATOMIC and large storage buffers that wgpu's
/// defaults do not request.
pub fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("alignscope device (UI + model)"),
        required_features: adapter.features(),
        required_limits: adapter.limits(),
        ..Default::default()
    }
}

/// The instance descriptor, honouring `WGPU_BACKEND` and friends like eframe does.
pub fn instance_descriptor() -> wgpu::InstanceDescriptor {
    wgpu::InstanceDescriptor {
        backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY | wgpu::Backends::GL),
        flags: wgpu::InstanceFlags::from_build_config().with_env(),
        backend_options: wgpu::BackendOptions::from_env_or_default(),
        memory_budget_thresholds: wgpu::MemoryBudgetThresholds::default(),
        display: None,
    }
}

/// The compute context the model runs in.
#[derive(Clone, Debug)]
pub struct Compute {
    pub device: Device,
    pub decision: Decision,
    pub adapter: Option<AdapterSummary>,
}

impl Compute {
    /// One line for status bars and logs.
    pub fn describe(&self) -> String {
        match &self.adapter {
            Some(a) => format!("backend {} · adapter {} · {}", self.decision.backend, a, self.decision.reason),
            None => format!("backend {} · no wgpu adapter · {}", self.decision.backend, self.decision.reason),
        }
    }

    /// Short form for a status bar: the backend, and why when it is a fallback.
    pub fn status_line(&self) -> String {
        let adapter =
            self.adapter.as_ref().map_or("no wgpu adapter".to_string(), |a| format!("{} ({})", a.name, a.kind_label()));
        match (self.decision.backend, &self.adapter) {
            (Backend::Flex, Some(a)) if a.is_software() && self.decision.reason.contains("falling back") => {
                format!("backend: flex (CPU) — fallback: the only adapter, {}, is software", a.name)
            }
            (Backend::Flex, None) => format!("backend: flex (CPU) — {}", self.decision.reason),
            (backend, _) => format!("backend: {backend} · adapter: {adapter}"),
        }
    }

    /// The CPU backend without looking for any adapter.
    pub fn flex(reason: impl Into<String>) -> Self {
        Self {
            device: Device::flex(),
            decision: Decision { backend: Backend::Flex, reason: reason.into() },
            adapter: None,
        }
    }

    /// Register handles some other component (eframe) created and decide on them.
    pub fn from_shared(
        request: BackendRequest,
        instance: &wgpu::Instance,
        adapter: &wgpu::Adapter,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
    ) -> Result<Self, BackendError> {
        let summary = AdapterSummary::of(adapter);
        let decision = decide(request, Some(&summary))?;
        let device = match decision.backend {
            Backend::Flex => Device::flex(),
            Backend::Wgpu => register(instance, adapter, device, queue)?,
        };
        Ok(Self { device, decision, adapter: Some(summary) })
    }

    /// Headless (CLI, tests): find an adapter, create the device ourselves, decide.
    pub fn headless(request: BackendRequest) -> Result<Self, BackendError> {
        if request == BackendRequest::Flex {
            let adapter = probe_adapter().map(|(_, a)| AdapterSummary::of(&a));
            let mut compute = Self::flex("flex requested");
            compute.adapter = adapter;
            return Ok(compute);
        }
        let Some((instance, adapter)) = probe_adapter() else {
            let decision = decide(request, None)?;
            return Ok(Self { device: Device::flex(), decision, adapter: None });
        };
        let summary = AdapterSummary::of(&adapter);
        let decision = decide(request, Some(&summary))?;
        if decision.backend == Backend::Flex {
            return Ok(Self { device: Device::flex(), decision, adapter: Some(summary) });
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&device_descriptor(&adapter)))
            .map_err(|e| BackendError::Device { adapter: summary.to_string(), cause: e.to_string() })?;
        let device = register(&instance, &adapter, &device, &queue)?;
        Ok(Self { device, decision, adapter: Some(summary) })
    }
}

/// The adapter wgpu would pick for a high-performance request, with its instance.
pub fn probe_adapter() -> Option<(wgpu::Instance, wgpu::Adapter)> {
    let instance = wgpu::Instance::new(instance_descriptor());
    let options =
        wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
    let adapter = pollster::block_on(instance.request_adapter(&options)).ok()?;
    Some((instance, adapter))
}

/// Every adapter wgpu can see (for `doctor`).
pub fn all_adapters() -> Vec<AdapterSummary> {
    let instance = wgpu::Instance::new(instance_descriptor());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all())).iter().map(AdapterSummary::of).collect()
}

fn register(
    instance: &wgpu::Instance,
    adapter: &wgpu::Adapter,
    device: &wgpu::Device,
    queue: &wgpu::Queue,
) -> Result<Device, BackendError> {
    let setup = WgpuSetup {
        instance: instance.clone(),
        adapter: adapter.clone(),
        device: device.clone(),
        queue: queue.clone(),
        backend: adapter.get_info().backend,
    };
    Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| BackendError::Device { adapter: AdapterSummary::of(adapter).to_string(), cause: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(device_type: wgpu::DeviceType) -> AdapterSummary {
        AdapterSummary {
            name: "test adapter".into(),
            device_type,
            graphics_api: wgpu::Backend::Vulkan,
            driver: String::new(),
            driver_info: String::new(),
        }
    }

    #[test]
    fn auto_uses_a_hardware_gpu() {
        for t in [wgpu::DeviceType::DiscreteGpu, wgpu::DeviceType::IntegratedGpu, wgpu::DeviceType::VirtualGpu] {
            let d = decide(BackendRequest::Auto, Some(&adapter(t))).unwrap();
            assert_eq!(d.backend, Backend::Wgpu, "{t:?}");
        }
    }

    #[test]
    fn auto_falls_back_to_flex_on_software_or_no_adapter() {
        let d = decide(BackendRequest::Auto, Some(&adapter(wgpu::DeviceType::Cpu))).unwrap();
        assert_eq!(d.backend, Backend::Flex);
        assert!(d.reason.contains("software"), "{}", d.reason);
        let d = decide(BackendRequest::Auto, None).unwrap();
        assert_eq!(d.backend, Backend::Flex);
        assert!(d.reason.contains("no wgpu adapter"), "{}", d.reason);
    }

    #[test]
    fn forcing_wgpu_works_on_software_but_not_without_adapter() {
        let d = decide(BackendRequest::Wgpu, Some(&adapter(wgpu::DeviceType::Cpu))).unwrap();
        assert_eq!(d.backend, Backend::Wgpu);
        assert_eq!(decide(BackendRequest::Wgpu, None), Err(BackendError::NoAdapter));
    }

    #[test]
    fn flex_is_always_honoured() {
        for a in [None, Some(adapter(wgpu::DeviceType::DiscreteGpu))] {
            assert_eq!(decide(BackendRequest::Flex, a.as_ref()).unwrap().backend, Backend::Flex);
        }
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!("WGPU".parse::<BackendRequest>(), Ok(BackendRequest::Wgpu));
        assert_eq!("ndarray".parse::<BackendRequest>(), Ok(BackendRequest::Flex));
        assert_eq!("flex".parse::<BackendRequest>(), Ok(BackendRequest::Flex));
        assert!("cuda".parse::<BackendRequest>().is_err());
    }
}
