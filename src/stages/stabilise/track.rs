//! The motion track sidecar: one JSON object per line and restored frame, in output order.
//!
//! ```json
//! {"frame":12,"key":"3f2a…","prev_key":"9c01…","motion":[0.41,17.9,-0.002,1.0001],
//!  "gain":1.0,"lift":0.0,"break":null,"raw":[3.2,214.5,-0.01,1.0003],
//!  "smoothed":[3.0,214.9,-0.02,1.0003],"correction":[-0.2,0.4,-0.01,1.0],
//!  "used_before":12,"used_after":15}
//! ```
//!
//! - `frame`: the frame's place in this run's output, from 0 (the pipeline may renumber).
//! - `key`, `prev_key`: 64-bit hashes (hex) of the frame's and its predecessor's luma at the
//!   analysis resolution: they name the pair independently of frame numbers, so a track read
//!   back applies to the same frames in any chunk of a later run.
//! - `motion`: from the previous frame to this one, `[dx, dy, rotation, scale]` (px, px,
//!   degrees clockwise, factor) about the frame centre; `null` with `break` `"cut"` (a new
//!   shot) or `"lost"` (registration failed), and for the first frame of a run.
//! - `gain`, `lift`: the luma change from the previous frame (`this ≈ gain * prev + lift`).
//! - `raw`: the camera path, the motions composed since the shot started (or the run did);
//!   `smoothed`: where the restored frame sits on that path (`raw` followed by `correction`);
//!   `correction`: the move applied to this frame. All `[dx, dy, rotation, scale]`.
//! - `used_before`, `used_after`: frames of the shot in the window on either side.
//!
//! Reading a track back (`track_in`) takes the `motion`, `gain`, `lift` and `break` of every
//! pair it names instead of estimating them; pairs it does not name are estimated as usual.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::motion::{Break, PairMotion, Similarity};

/// One line of the track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub frame: usize,
    pub key: String,
    pub prev_key: Option<String>,
    pub motion: Option<[f64; 4]>,
    pub gain: f64,
    pub lift: f64,
    #[serde(rename = "break")]
    pub brk: Option<Break>,
    pub raw: [f64; 4],
    pub smoothed: [f64; 4],
    pub correction: [f64; 4],
    pub used_before: usize,
    pub used_after: usize,
}

pub fn key_text(hash: u64) -> String {
    format!("{hash:016x}")
}

fn parse_key(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

impl Record {
    /// The pair this line describes, if it names one.
    pub fn pair(&self) -> Option<((u64, u64), PairMotion)> {
        let prev = parse_key(self.prev_key.as_deref()?)?;
        let key = parse_key(&self.key)?;
        let motion = match (self.motion, self.brk) {
            (Some(m), None) => PairMotion {
                motion: Some(Similarity::from_track(m)),
                gain: self.gain,
                lift: self.lift,
                brk: None,
            },
            (None, Some(b)) => PairMotion::broken(b),
            _ => return None,
        };
        Some(((prev, key), motion))
    }
}

/// The pairs of a track file, by `(previous key, key)`.
pub fn read(path: &Path) -> Result<HashMap<(u64, u64), PairMotion>> {
    let file = File::open(path)
        .with_context(|| format!("stabilise: cannot open the motion track {}", path.display()))?;
    let mut pairs = HashMap::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| {
            format!("stabilise: cannot read the motion track {}", path.display())
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line).with_context(|| {
            format!(
                "stabilise: {} line {} is not a motion track record",
                path.display(),
                i + 1
            )
        })?;
        if let Some(m) = rec.motion {
            if !m.iter().all(|v| v.is_finite()) || m[3] <= 0.0 {
                bail!(
                    "stabilise: {} line {}: motion {:?} is not a valid transform",
                    path.display(),
                    i + 1,
                    m
                );
            }
        }
        if let Some((k, m)) = rec.pair() {
            pairs.insert(k, m);
        }
    }
    Ok(pairs)
}

/// Appends records to a track file, created (or emptied) on the first record.
pub struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| {
            format!(
                "stabilise: cannot create the motion track {}",
                path.display()
            )
        })?;
        Ok(Writer {
            out: BufWriter::new(file),
        })
    }

    /// Write one line and flush it, so an interrupted run leaves a track of the frames done.
    pub fn write(&mut self, rec: &Record) -> Result<()> {
        let line = serde_json::to_string(rec)?;
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }
}
