//! Every repair reviewable and reversible: a restore writes each repair with its id to the
//! repairs file and a report page; `restore --veto` with ids (or a frame and box) leaves those
//! repairs out and every other pixel bit-identical, on the CPU and on the GPU; `review` puts
//! each repair on a contact sheet; a bad veto file is refused naming the file and line.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use nitrate::frame::Frame;
use nitrate::io::{self, OutputFormat};
use nitrate::stages::repairs::Repair;
use nitrate::synth::scene_frame;

fn nitrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nitrate"))
        .args(args)
        .output()
        .expect("run nitrate")
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A dusty 16-bit PNG sequence made by `degrade` from a synthetic scene: `dir/d/degraded`.
fn dusty(dir: &Path) -> std::path::PathBuf {
    let clean = dir.join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    for t in 0..8 {
        let f = scene_frame(160, 96, 3, t, 4);
        io::write_frame(
            &clean.join(format!("f_{:04}.png", t + 1)),
            &f,
            OutputFormat::Png { bits: 16 },
        )
        .unwrap();
    }
    let d = dir.join("d");
    ok(nitrate(&[
        "degrade",
        clean.to_str().unwrap(),
        d.to_str().unwrap(),
        "--defects",
        "dust",
        "--seed",
        "5",
    ]));
    d.join("degraded")
}

fn repairs(dir: &Path) -> Vec<Repair> {
    std::fs::read_to_string(dir.join("repairs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn frames(dir: &Path) -> Vec<(String, Frame)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let f = io::read_frame(&dir.join(&n)).unwrap();
            (n, f)
        })
        .collect()
}

fn restore(input: &Path, out: &Path, backend: &str, extra: &[&str]) {
    let mut args = vec![
        "restore",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--stages",
        "dust,scratch",
        "--backend",
        backend,
        "-q",
    ];
    args.extend_from_slice(extra);
    ok(nitrate(&args));
}

/// Restore, veto two repairs (one by a pasted line of the repairs file, one by its frame and
/// a box inside it), restore again: the vetoed regions hold the input, the rest is identical.
fn veto_round(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dusty(dir.path());
    let (first, second) = (dir.path().join("r1"), dir.path().join("r2"));
    restore(&input, &first, backend, &[]);
    let all = repairs(&first);
    let dust: Vec<&Repair> = all.iter().filter(|r| r.stage == "dust").collect();
    assert!(
        dust.len() >= 4,
        "{backend}: only {} dust repairs",
        dust.len()
    );
    assert!(all
        .iter()
        .all(|r| !r.vetoed && r.area > 0 && r.max_change > 0.0));
    // The record sums the same repairs; the report page is beside it.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("restoration.json")).unwrap())
            .unwrap();
    assert_eq!(
        record["stages"][0]["report"]["repaired"]["regions"],
        dust.len()
    );
    assert!(first.join("report.html").is_file());

    let (a, b) = (dust[0], dust[dust.len() - 1]);
    let [x, y, w, h] = b.bbox;
    let line = std::fs::read_to_string(first.join("repairs.jsonl"))
        .unwrap()
        .lines()
        .find(|l| l.contains(&format!("\"{}\"", a.id)))
        .unwrap()
        .to_string();
    let veto = dir.path().join("veto.txt");
    std::fs::write(
        &veto,
        format!(
            "# two wrong repairs\n{line}\n*:{}@{},{},{},{}\n",
            b.frame,
            x + w / 2,
            y + h / 2,
            1,
            1
        ),
    )
    .unwrap();
    restore(
        &input,
        &second,
        backend,
        &["--veto", veto.to_str().unwrap()],
    );
    let again = repairs(&second);
    let vetoed: Vec<&Repair> = again.iter().filter(|r| r.vetoed).collect();
    let ids: Vec<&str> = vetoed.iter().map(|r| r.id.as_str()).collect();
    assert!(
        ids.contains(&a.id.as_str()) && ids.contains(&b.id.as_str()),
        "{ids:?}"
    );
    // The same repairs found, with the same ids and measures.
    let unflag = |r: &Repair| Repair {
        vetoed: false,
        ..r.clone()
    };
    assert_eq!(again.iter().map(unflag).collect::<Vec<_>>(), all);

    let inputs = frames(&input);
    let (one, two) = (frames(&first), frames(&second));
    let mut changed = 0;
    for ((name, f1), ((_, f2), (_, src))) in one.iter().zip(two.iter().zip(&inputs)) {
        for i in 0..f1.data.len() {
            if f1.data[i] == f2.data[i] {
                continue;
            }
            changed += 1;
            let p = i % (f1.width * f1.height);
            let (px, py) = (p % f1.width, p / f1.width);
            let inside = vetoed.iter().any(|r| {
                let [x, y, w, h] = r.bbox;
                name == &format!("f_{:04}.png", r.frame)
                    && (x..x + w).contains(&px)
                    && (y..y + h).contains(&py)
            });
            assert!(
                inside,
                "{backend}: {name} changed at ({px}, {py}) outside the vetoed repairs"
            );
            assert_eq!(
                f2.data[i], src.data[i],
                "{backend}: {name} ({px}, {py}) is not the input"
            );
        }
    }
    assert!(changed > 0, "{backend}: the veto changed nothing");
}

#[test]
fn a_vetoed_repair_is_gone_and_the_rest_is_bit_identical_on_the_cpu() {
    veto_round("cpu");
}

#[test]
fn a_vetoed_repair_is_gone_and_the_rest_is_bit_identical_on_the_gpu() {
    if common::gpu().is_none() {
        return;
    }
    veto_round("gpu");
}

#[test]
fn review_puts_every_repair_on_a_sheet_largest_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = dusty(dir.path());
    let out = dir.path().join("r");
    restore(&input, &out, "cpu", &[]);
    let n = repairs(&out).len();
    let o = ok(nitrate(&["review", out.to_str().unwrap()]));
    let sheets: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(sheets.len(), n.div_ceil(nitrate::review::PER_SHEET));
    let first = image::open(&sheets[0]).unwrap().to_rgb8();
    // 4 tiles across; rows of tiles enough for the repairs on it.
    let on_first = n.min(nitrate::review::PER_SHEET);
    let rows = on_first.div_ceil(4) as u32;
    assert!(
        first.height() > rows * 160 && first.height() < rows * 190,
        "{}",
        first.height()
    );
    // Without a repairs file it says so.
    let o = nitrate(&["review", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no repairs file"));
}

#[test]
fn a_bad_veto_file_is_refused_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for t in 0..2 {
        let f = scene_frame(32, 24, 3, t, 1);
        io::write_frame(
            &input.join(format!("f_{t:04}.png")),
            &f,
            OutputFormat::Png { bits: 8 },
        )
        .unwrap();
    }
    let veto = dir.path().join("veto.txt");
    let out = dir.path().join("out");
    for (text, want) in [
        ("dust:1:1\ndust:two:1\n", "veto.txt, line 2"),
        ("denoise:1:1\n", "not a repair stage"),
        (
            "scratch:1:1\n",
            "stage 'scratch', which is not in the chain",
        ),
    ] {
        std::fs::write(&veto, text).unwrap();
        let o = nitrate(&[
            "restore",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--stages",
            "dust",
            "--veto",
            veto.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(!out.join("f_0000.png").exists());
    }
}
