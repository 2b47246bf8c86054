//! Ctrl-C: the first press lets the frames in hand finish and stops reading new ones; a second
//! press exits at once. Writes are atomic either way, so no partial frame file is ever left.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static PRESSES: AtomicUsize = AtomicUsize::new(0);
/// Temporaries being written by child processes (a video encoder), removed on a hard exit.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remove `path` if the process quits on a second Ctrl-C while it is being written.
pub fn register_temp(path: PathBuf) {
    TEMPS.lock().unwrap_or_else(|e| e.into_inner()).push(path);
}

/// `path` is renamed or removed: nothing to clean up on exit any more.
pub fn unregister_temp(path: &std::path::Path) {
    TEMPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

/// The error a run returns when it stopped on Ctrl-C, saying what it leaves.
#[derive(Debug)]
pub enum Interrupted {
    /// Frame files: those written are whole and kept.
    Frames,
    /// A video or an analysis: written whole or not at all, so nothing is kept.
    Nothing,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interrupted::Frames => {
                "interrupted: the frames written so far are whole and kept; run again with \
                 --resume to restore the rest"
            }
            Interrupted::Nothing => {
                "interrupted: nothing was written (it is written whole or not at all); run \
                 again to start over"
            }
        })
    }
}

impl std::error::Error for Interrupted {}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Install the Ctrl-C handler (once per process).
pub fn install_handler() {
    let _ = ctrlc::set_handler(|| {
        if PRESSES.fetch_add(1, Ordering::SeqCst) == 0 {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\nstopping after the frames in hand (Ctrl-C again to quit at once)");
        } else {
            // An orphaned encoder finishes into the unlinked file, so nothing is left.
            for p in TEMPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = std::fs::remove_file(p);
            }
            std::process::exit(130);
        }
    });
}
