//! nitrate: a film-heritage restoration engine.

pub mod frame;
pub mod gpu;
pub mod io;
pub mod stages;
pub mod pipeline;
pub mod preset;
pub mod metrics;
pub mod compare;
pub mod synth;
pub mod probe;
pub mod cli;
pub mod app;
pub mod demo;
pub mod degrade;
