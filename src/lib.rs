//! nitrate: a film-heritage restoration engine.

pub mod analysis;
pub mod app;
pub mod cli;
pub mod compare;
pub mod degrade;
pub mod demo;
pub mod farm;
pub mod frame;
pub mod gpu;
pub mod io;
pub mod memory;
pub mod metrics;
pub mod motion;
pub mod pipeline;
pub mod preset;
pub mod preview;
pub mod probe;
pub mod report;
pub mod review;
pub mod simd;
pub mod stages;
pub mod synth;
