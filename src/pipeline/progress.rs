//! Progress: an indicatif bar with frames/s and ETA on a terminal, plain lines otherwise
//! (logs of render-farm jobs).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    start: Instant,
    plain: Mutex<(u64, Instant)>,
    quiet: bool,
}

impl Progress {
    pub fn new(total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} frames  {per_sec:.1}  ETA {eta}  {msg}",
                )
                .expect("valid template"),
            );
            bar
        });
        Progress {
            bar,
            total,
            start: Instant::now(),
            plain: Mutex::new((0, Instant::now())),
            quiet,
        }
    }

    /// One more frame written.
    pub fn frame_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        let mut state = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        if !self.quiet && (state.1.elapsed() >= Duration::from_secs(5) || state.0 == self.total) {
            state.1 = Instant::now();
            let secs = self.start.elapsed().as_secs_f64().max(1e-9);
            let rate = state.0 as f64 / secs;
            let eta = (self.total - state.0) as f64 / rate.max(1e-9);
            eprintln!(
                "restored {}/{} frames ({rate:.1} frames/s, ETA {eta:.0}s)",
                state.0, self.total
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
