//! Adapter choice, device creation and error plumbing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, bail, Context as _, Result};

use super::pool::BufferPool;

/// Which adapter [`GpuContext::new`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The best hardware adapter; software rasterisers (llvmpipe, SwiftShader, WARP) are refused
    /// because nitrate's own CPU path beats them. Used by `--backend auto`.
    HardwareOnly,
    /// The best adapter of any kind, software included. Used by `--backend gpu`.
    Any,
    /// Entry `i` of [`list_adapters`] (same order).
    Index(usize),
}

/// The device and everything kept across frames: compiled pipelines and free buffers.
pub struct GpuContext {
    // Held for the device's lifetime; some backends (GL) tie the device to it.
    _instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub(super) pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
    pub(super) pool: Mutex<BufferPool>,
    /// Code value -> normalised value table for DPX 10-bit unpacking, built on first use.
    pub(super) dpx10_lut: OnceLock<wgpu::Buffer>,
    /// First error the device reported outside an error scope, for the next checked call to
    /// return; `lost` marks a device loss, which every later call reports.
    device_error: Arc<Mutex<Option<DeviceError>>>,
}

impl GpuContext {
    /// Open the adapter `choice` selects, with the adapter's own limits: a 4K RGB `f32` frame
    /// (153 MB) is larger than wgpu's default 128 MiB storage binding.
    pub fn new(choice: AdapterChoice) -> Result<Self> {
        let instance = new_instance();
        let adapters = ranked_adapters(&instance);
        let seen = || summary(&adapters);
        let adapter = match choice {
            AdapterChoice::Any => adapters.first().cloned(),
            AdapterChoice::HardwareOnly => {
                let hw = adapters
                    .iter()
                    .find(|a| !is_software(&a.get_info()))
                    .cloned();
                if hw.is_none() && !adapters.is_empty() {
                    bail!(
                        "no hardware GPU adapter found, only software ones (wgpu saw: {}); \
                         use --backend gpu to run on them anyway",
                        seen()
                    );
                }
                hw
            }
            AdapterChoice::Index(i) => {
                if i >= adapters.len() && !adapters.is_empty() {
                    bail!(
                        "no GPU adapter {i}: there are {} (wgpu saw: {})",
                        adapters.len(),
                        seen()
                    );
                }
                adapters.get(i).cloned()
            }
        };
        let Some(adapter) = adapter else {
            bail!("no GPU adapter found (wgpu saw: {})", seen());
        };
        let info = adapter.get_info();

        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("nitrate"),
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .with_context(|| format!("could not open GPU device on {}", info.name))?;

        // Errors outside an error scope would otherwise panic in wgpu's default handler.
        let device_error = Arc::new(Mutex::new(None::<DeviceError>));
        let sink = device_error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            record(&sink, format!("GPU error: {e}"), false);
        }));
        let sink = device_error.clone();
        device.set_device_lost_callback(move |reason, message| {
            record(
                &sink,
                format!("GPU device lost ({reason:?}): {message}"),
                true,
            );
        });

        Ok(GpuContext {
            _instance: instance,
            adapter,
            device,
            queue,
            info,
            pipelines: Mutex::new(HashMap::new()),
            pool: Mutex::new(BufferPool::default()),
            dpx10_lut: OnceLock::new(),
            device_error,
        })
    }

    /// One line for logs and run records, e.g.
    /// "GPU: llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, software)".
    pub fn describe(&self) -> String {
        format!(
            "GPU: {} ({:?}, {})",
            self.info.name,
            self.info.backend,
            kind(&self.info)
        )
    }

    /// True when the adapter is a software rasteriser (timings are then not GPU timings).
    pub fn is_software(&self) -> bool {
        is_software(&self.info)
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Return (and clear) an error the device reported asynchronously; device loss stays.
    pub fn check(&self) -> Result<()> {
        let mut slot = self.device_error.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            None => Ok(()),
            Some(e) => {
                let message = e.message.clone();
                if e.lost {
                    *slot = Some(e);
                }
                Err(anyhow!(message))
            }
        }
    }

    /// Run `f` inside validation and out-of-memory error scopes so a mistake in `what` comes back
    /// as an error from here instead of reaching the uncaptured handler.
    pub(super) fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        // Scopes pop in reverse order; on native the futures are ready at once.
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            bail!("{what} failed on the GPU: {e}");
        }
        self.check()?;
        Ok(out)
    }

    /// Block until the queue has finished everything submitted so far.
    pub(super) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("waiting for the GPU failed: {e}"))?;
        self.check()
    }
}

/// One line per adapter, best first (the order [`AdapterChoice::Index`] counts in): index,
/// name, kind, backend, driver and the limits that bound frame size.
pub fn list_adapters() -> Result<Vec<String>> {
    let adapters = ranked_adapters(&new_instance());
    Ok(adapters
        .iter()
        .enumerate()
        .map(|(i, a)| adapter_line(i, a))
        .collect())
}

fn adapter_line(i: usize, adapter: &wgpu::Adapter) -> String {
    let (info, l) = (adapter.get_info(), adapter.limits());
    let driver = format!("{} {}", info.driver, info.driver_info);
    let mib = |b: u64| b >> 20;
    format!(
        "{i}: {} [{}, {:?}] driver: {}; max buffer {} MiB, max storage binding {} MiB, \
         max workgroups/dim {}",
        info.name,
        kind(&info),
        info.backend,
        if driver.trim().is_empty() {
            "unknown"
        } else {
            driver.trim()
        },
        mib(l.max_buffer_size),
        mib(l.max_storage_buffer_binding_size),
        l.max_compute_workgroups_per_dimension,
    )
}

struct DeviceError {
    message: String,
    lost: bool,
}

/// Keep the first error, except that a device loss replaces anything milder.
fn record(sink: &Mutex<Option<DeviceError>>, message: String, lost: bool) {
    let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_none() || (lost && !slot.as_ref().is_some_and(|s| s.lost)) {
        *slot = Some(DeviceError { message, lost });
    }
}

fn new_instance() -> wgpu::Instance {
    // `_from_env` honours WGPU_BACKEND and friends, handy for forcing a backend when debugging.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every usable adapter, best first: by kind in [`KINDS`] order, then Vulkan/Metal/DX12
/// before GL.
fn ranked_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters: Vec<wgpu::Adapter> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .filter(|a| a.get_info().backend != wgpu::Backend::Noop)
            .collect();
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        let kind_rank = KINDS.iter().position(|k| *k == kind(&info));
        let backend_rank = match info.backend {
            wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
            wgpu::Backend::Gl => 1,
            _ => 2,
        };
        (kind_rank, backend_rank)
    });
    adapters
}

/// Adapter kinds, best first.
const KINDS: [&str; 5] = ["discrete", "integrated", "virtual", "software", "other"];

fn kind(info: &wgpu::AdapterInfo) -> &'static str {
    match info.device_type {
        _ if is_software(info) => "software",
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "software",
        wgpu::DeviceType::Other => "other",
    }
}

/// Software rasterisers: reported as `Cpu`, or recognised by name because GL drivers often
/// report them as `Other`.
fn is_software(info: &wgpu::AdapterInfo) -> bool {
    const NAMES: [&str; 5] = [
        "llvmpipe",
        "lavapipe",
        "softpipe",
        "swiftshader",
        "microsoft basic render",
    ];
    let name = info.name.to_ascii_lowercase();
    info.device_type == wgpu::DeviceType::Cpu || NAMES.iter().any(|s| name.contains(s))
}

fn summary(adapters: &[wgpu::Adapter]) -> String {
    if adapters.is_empty() {
        return "nothing; is a Vulkan, Metal, DX12 or GL driver installed?".into();
    }
    adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            format!("{} [{}, {:?}]", info.name, kind(&info), info.backend)
        })
        .collect::<Vec<_>>()
        .join("; ")
}
