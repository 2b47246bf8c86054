//! Sequence discovery: directories, printf and hash patterns, ordering, gaps, duplicates,
//! mixed sizes.

use std::path::Path;

use nitrate::io::sequence::{Gap, Sequence};
use nitrate::io::{self, OutputFormat};
use nitrate::synth::scene_frame;

fn write(dir: &Path, name: &str, w: usize, h: usize) {
    io::write_frame(
        &dir.join(name),
        &scene_frame(w, h, 1, 0, 1),
        OutputFormat::Png { bits: 16 },
    )
    .unwrap();
}

#[test]
fn directory_frames_are_ordered_by_number_not_name() {
    let dir = tempfile::tempdir().unwrap();
    for n in [9, 10, 8, 100, 11] {
        write(dir.path(), &format!("reel_{n}.png"), 8, 8);
    }
    std::fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
    let seq = Sequence::discover(dir.path()).unwrap();
    let numbers: Vec<i64> = seq.frames.iter().map(|f| f.number).collect();
    assert_eq!(numbers, [8, 9, 10, 11, 100]);
    assert_eq!(
        seq.gaps(),
        [Gap {
            first: 12,
            last: 99
        }]
    );
}

#[test]
fn printf_and_hash_patterns_select_their_sequence() {
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=3 {
        write(dir.path(), &format!("scan_{n:06}.png"), 8, 8);
        write(dir.path(), &format!("other.{n:04}.png"), 8, 8);
    }
    let seq = Sequence::discover(&dir.path().join("scan_%06d.png")).unwrap();
    assert_eq!(seq.len(), 3);
    assert!(seq
        .frames
        .iter()
        .all(|f| f.path.to_string_lossy().contains("scan_")));
    let seq = Sequence::discover(&dir.path().join("other.####.png")).unwrap();
    assert_eq!(seq.len(), 3);
    assert_eq!(seq.first_number(), 1);
    // The directory alone is ambiguous: both sequences are named in the error.
    let err = format!("{:#}", Sequence::discover(dir.path()).unwrap_err());
    assert!(
        err.contains("2 frame sequences") && err.contains("scan_") && err.contains("other."),
        "{err}"
    );
    let err = format!(
        "{:#}",
        Sequence::discover(&dir.path().join("none_%04d.png")).unwrap_err()
    );
    assert!(err.contains("no files match"), "{err}");
}

#[test]
fn duplicate_frame_numbers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f_1.png", 8, 8);
    write(dir.path(), "f_01.png", 8, 8);
    let err = format!("{:#}", Sequence::discover(dir.path()).unwrap_err());
    assert!(err.contains("frame 1 appears twice"), "{err}");
}

#[test]
fn mixed_sizes_name_the_odd_frame() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f_0001.png", 16, 8);
    write(dir.path(), "f_0002.png", 16, 8);
    write(dir.path(), "f_0003.png", 16, 9);
    let seq = Sequence::discover(dir.path()).unwrap();
    let err = format!("{:#}", seq.check_headers(0..=2).unwrap_err());
    assert!(
        err.contains("f_0003.png") && err.contains("mixed frame sizes"),
        "{err}"
    );
    assert!(seq.check_headers(0..=1).is_ok());
}

#[test]
fn missing_input_is_a_clear_error() {
    let err = format!(
        "{:#}",
        Sequence::discover(Path::new("/nonexistent/reel")).unwrap_err()
    );
    assert!(
        err.contains("/nonexistent/reel") && err.contains("no such"),
        "{err}"
    );
}
