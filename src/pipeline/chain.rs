//! The stage chain with sliding temporal windows, generic over where frames live (CPU `Frame`
//! or GPU `GpuFrame`).
//!
//! Frames enter in sequence order by position. Each stage keeps the frames its radius needs and
//! emits frame `q` once `q + radius` has arrived. Windows are cut only at the true ends of the
//! sequence, never at the ends of the range being read, so a chunk read with enough handle frames
//! (the sum of the radii, see [`Chain::handle`]) restores exactly as a whole run does.

use std::collections::VecDeque;

use anyhow::Result;

use crate::stages::{Stage, Window};

struct Slot<T> {
    radius: usize,
    buf: VecDeque<(usize, T)>,
    /// First and last input position this stage will receive.
    in_lo: usize,
    in_hi: usize,
    /// Next output position and the last one it can produce exactly.
    next_out: usize,
    out_hi: usize,
}

pub struct Chain<'s, T> {
    stages: &'s [Box<dyn Stage>],
    slots: Vec<Slot<T>>,
}

/// How a chain runs a stage on a window, and what happens to frames it no longer needs
/// (GPU frames go back to the buffer pool).
pub trait Runner<T> {
    fn run(&mut self, stage: &dyn Stage, window: &Window<'_, T>) -> Result<T>;
    fn release(&mut self, frame: T);
}

impl<'s, T> Chain<'s, T> {
    /// Frames of context needed on each side of a range for its output to be exact.
    pub fn handle(stages: &[Box<dyn Stage>]) -> usize {
        stages.iter().map(|s| s.temporal_radius()).sum()
    }

    /// A chain over input positions `in_lo..=in_hi` of a sequence of `seq_len` frames.
    pub fn new(stages: &'s [Box<dyn Stage>], seq_len: usize, in_lo: usize, in_hi: usize) -> Self {
        let mut slots = Vec::with_capacity(stages.len());
        let (mut lo, mut hi) = (in_lo, in_hi);
        for stage in stages {
            let r = stage.temporal_radius();
            // Output is exact where the whole window lies inside what this stage receives,
            // except at the sequence ends, where the window is legitimately shorter.
            let out_lo = if lo == 0 { 0 } else { lo + r };
            let out_hi = if hi + 1 >= seq_len {
                hi
            } else {
                hi.saturating_sub(r)
            };
            slots.push(Slot {
                radius: r,
                buf: VecDeque::with_capacity(2 * r + 1),
                in_lo: lo,
                in_hi: hi,
                next_out: out_lo,
                out_hi,
            });
            (lo, hi) = (out_lo, out_hi);
        }
        Chain { stages, slots }
    }

    /// The positions the last stage will produce.
    pub fn output_range(&self) -> Option<(usize, usize)> {
        self.slots.last().map(|s| (s.next_out, s.out_hi))
    }

    /// Feed the frame at position `pos` (in order); restored frames are appended to `out`.
    pub fn push(
        &mut self,
        pos: usize,
        frame: T,
        runner: &mut dyn Runner<T>,
        out: &mut Vec<(usize, T)>,
    ) -> Result<()> {
        self.push_at(0, pos, frame, runner, out)
    }

    fn push_at(
        &mut self,
        j: usize,
        pos: usize,
        frame: T,
        runner: &mut dyn Runner<T>,
        out: &mut Vec<(usize, T)>,
    ) -> Result<()> {
        if j == self.slots.len() {
            out.push((pos, frame));
            return Ok(());
        }
        let mut emitted = Vec::new();
        {
            let slot = &mut self.slots[j];
            debug_assert!(pos >= slot.in_lo && pos <= slot.in_hi);
            slot.buf.push_back((pos, frame));
            let r = slot.radius;
            while slot.next_out <= slot.out_hi && (slot.next_out + r).min(slot.in_hi) <= pos {
                let q = slot.next_out;
                let first = slot.buf.front().map_or(q, |f| f.0);
                let at = |p: usize| &slot.buf[p - first].1;
                let lo = q.saturating_sub(r).max(slot.in_lo);
                let hi = (q + r).min(slot.in_hi);
                let window = Window {
                    before: (lo..q).rev().map(at).collect(),
                    center: at(q),
                    after: (q + 1..=hi).map(at).collect(),
                };
                emitted.push((q, runner.run(self.stages[j].as_ref(), &window)?));
                slot.next_out += 1;
                // Frames no later window needs.
                while slot.buf.front().is_some_and(|f| f.0 + r < slot.next_out) {
                    let (_, old) = slot.buf.pop_front().expect("front exists");
                    runner.release(old);
                }
            }
            if pos == slot.in_hi {
                for (_, old) in slot.buf.drain(..) {
                    runner.release(old);
                }
            }
        }
        for (q, f) in emitted {
            self.push_at(j + 1, q, f, runner, out)?;
        }
        Ok(())
    }
}
