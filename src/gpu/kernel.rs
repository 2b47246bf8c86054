//! Compute kernels: WGSL loading with shared includes, the pipeline cache and dispatch.

use std::borrow::Cow;

use anyhow::{bail, Result};

use super::{GpuContext, GpuFrame};

/// Side of the square workgroups every per-pixel kernel uses; keep in sync with `WG` in
/// `shaders/shared/common.wgsl`. 16x16 = 256 invocations, the WebGPU default maximum.
pub const WORKGROUP_SIZE: u32 = 16;

/// Shared WGSL modules a shader may pull in with a `// #include shared/<name>.wgsl` line.
const SHARED: &[(&str, &str)] = &[
    (
        "shared/common.wgsl",
        include_str!("../../shaders/shared/common.wgsl"),
    ),
    (
        "shared/dpx10.wgsl",
        include_str!("../../shaders/shared/dpx10.wgsl"),
    ),
    (
        "shared/quantise.wgsl",
        include_str!("../../shaders/shared/quantise.wgsl"),
    ),
    (
        "shared/motion_field.wgsl",
        include_str!("../../shaders/shared/motion_field.wgsl"),
    ),
    (
        "shared/block_field.wgsl",
        include_str!("../../shaders/shared/block_field.wgsl"),
    ),
    (
        "shared/dust.wgsl",
        include_str!("../../shaders/shared/dust.wgsl"),
    ),
    (
        "shared/denoise.wgsl",
        include_str!("../../shaders/shared/denoise.wgsl"),
    ),
    (
        "shared/stabilise_pass.wgsl",
        include_str!("../../shaders/shared/stabilise_pass.wgsl"),
    ),
    (
        "shared/upscale.wgsl",
        include_str!("../../shaders/shared/upscale.wgsl"),
    ),
    (
        "shared/guard.wgsl",
        include_str!("../../shaders/shared/guard.wgsl"),
    ),
    (
        "shared/upscale_range.wgsl",
        include_str!("../../shaders/shared/upscale_range.wgsl"),
    ),
];

/// A WGSL compute shader with exactly one `@compute` entry point, embedded in the binary:
/// `Kernel { name: "levels", source: include_str!("../../../shaders/levels.wgsl") }`.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// Cache key and debug label; unique per shader.
    pub name: &'static str,
    pub source: &'static str,
}

/// Replace each `// #include shared/x.wgsl` line with that shared module, so shaders stay
/// self-contained WGSL and need no build step.
pub fn preprocess(source: &str) -> Result<String> {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        if let Some(name) = line.trim().strip_prefix("// #include ") {
            let name = name.trim();
            let Some((_, text)) = SHARED.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = SHARED.iter().map(|(n, _)| *n).collect();
                bail!(
                    "unknown WGSL include '{name}' (known: {})",
                    known.join(", ")
                );
            };
            out.push_str(text);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

impl GpuContext {
    /// Compile a shader (after [`preprocess`]) and build its pipeline, uncached. A WGSL error
    /// comes back with the compiler's message.
    pub fn compile(&self, name: &str, source: &str) -> Result<wgpu::ComputePipeline> {
        let wgsl = preprocess(source)?;
        self.scoped(&format!("compiling shader '{name}'"), || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(Cow::Owned(wgsl)),
                });
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    // The layout is derived from the shader: bindings are whatever it declares.
                    layout: None,
                    module: &module,
                    entry_point: None,
                    compilation_options: Default::default(),
                    cache: None,
                })
        })
    }

    /// The kernel's pipeline, compiled on first use.
    pub fn pipeline(&self, kernel: &Kernel) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(kernel.name)
        {
            return Ok(p.clone());
        }
        // Compiled outside the lock; two threads racing compile twice, harmlessly.
        let p = self.compile(kernel.name, kernel.source)?;
        self.pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kernel.name, p.clone());
        Ok(p)
    }

    /// Dispatch `kernel` once. Binding convention (group 0): `buffers[i]` is binding `i`, and a
    /// non-empty `uniform` is copied to a uniform buffer at binding `buffers.len()`.
    /// The work is submitted, not waited for: frames stay on the device between stages.
    pub fn run_kernel(
        &self,
        kernel: &Kernel,
        buffers: &[&wgpu::Buffer],
        uniform: &[u8],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let pipeline = self.pipeline(kernel)?;
        let max = self.device.limits().max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&n| n > max) {
            let name = kernel.name;
            bail!("kernel '{name}': {workgroups:?} workgroups exceed the device's {max} per axis");
        }
        let uniform_buffer = (!uniform.is_empty()).then(|| {
            let b = self.take_buffer(
                uniform.len() as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                "uniform",
            );
            self.queue.write_buffer(&b, 0, uniform);
            b
        });
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .copied()
            .chain(uniform_buffer.as_ref())
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let result = self.scoped(&format!("kernel '{}'", kernel.name), || {
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(kernel.name),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(kernel.name),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
            }
            self.queue.submit([encoder.finish()]);
        });
        if let Some(b) = uniform_buffer {
            self.give_buffer(b);
        }
        result
    }

    /// Workgroups covering a `width` x `height` grid of invocations, `depth` deep (planes).
    pub fn workgroups(width: usize, height: usize, depth: usize) -> [u32; 3] {
        let n = |v: usize| v.div_ceil(WORKGROUP_SIZE as usize) as u32;
        [n(width), n(height), depth as u32]
    }

    /// Workgroups for one invocation per sample of `frame`: `(x, y, plane)`.
    pub fn frame_workgroups(frame: &GpuFrame) -> [u32; 3] {
        Self::workgroups(frame.width, frame.height, frame.planes)
    }
}
