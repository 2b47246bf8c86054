//! Presets: every shipped preset parses and runs, every stage documents every knob, each class
//! of preset error says where and what is valid, and `presets show` resolves to a preset that
//! means the same.

use std::process::Command;

use nitrate::pipeline::{restore, Backend, RestoreJob};
use nitrate::preset::{Preset, BUILT_IN};
use nitrate::stages::{self, STAGE_NAMES};

fn err(text: &str) -> String {
    match Preset::parse(text, "p.toml").and_then(|p| p.build().map(|_| p)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_says(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "'{message}' lacks '{p}'");
    }
}

#[test]
fn every_stage_documents_every_parameter() {
    for (name, _) in STAGE_NAMES {
        let stage = stages::build(name, &toml::Table::new()).unwrap();
        let params = stage.params_json();
        let keys: Vec<&String> = params
            .as_object()
            .expect("params are a table")
            .keys()
            .collect();
        let knobs = stages::knobs(name);
        let documented: Vec<&str> = knobs.iter().map(|(k, _)| *k).collect();
        for key in &keys {
            assert!(
                documented.contains(&key.as_str()),
                "{name}.{key} has no doc comment in its Params struct"
            );
        }
        for (key, doc) in knobs {
            assert!(
                keys.iter().any(|k| k == key),
                "{name}: documented knob '{key}' is not a parameter"
            );
            assert!(doc.len() > 10, "{name}.{key}: documentation '{doc}'");
        }
    }
}

#[test]
fn shipped_presets_parse_build_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for t in 0..5 {
        let f = nitrate::synth::scene_frame(48, 32, 3, t, 4);
        nitrate::io::write_frame(
            &input.join(format!("f_{t:04}.png")),
            &f,
            nitrate::io::OutputFormat::Png { bits: 16 },
        )
        .unwrap();
    }
    for (name, text) in BUILT_IN {
        assert!(
            text.lines().any(|l| l.starts_with("# Suits:")),
            "preset '{name}' says nothing of what it suits"
        );
        let preset = Preset::load(name).unwrap();
        assert!(!preset.chain.is_empty(), "{name}: empty chain");
        let output = dir.path().join(format!("out-{name}"));
        let summary = restore(&RestoreJob {
            input: nitrate::io::Input::discover(&input, None).unwrap(),
            output: output.clone(),
            format: None,
            frames: None,
            overwrite: false,
            allow_gaps: false,
            quiet: true,
            check_gpu: false,
            stages: preset.build().unwrap(),
            backend: Backend::Cpu,
            record_extra: serde_json::json!({}),
            video: Default::default(),
        })
        .unwrap_or_else(|e| panic!("preset '{name}' does not run: {e:#}"));
        assert_eq!(summary.frames_written, 5, "{name}");
        // Every frame comes out at the chain's size (remaster-4k doubles it).
        let want = nitrate::stages::output_size(&preset.build().unwrap(), 48, 32);
        let upscales = preset.chain.iter().any(|e| e.name == "upscale");
        assert_eq!(want == (48, 32), !upscales, "{name}");
        for t in 0..5 {
            let f = nitrate::io::read_frame(&output.join(format!("f_{t:04}.png"))).unwrap();
            assert_eq!((f.width, f.height), want, "{name}: frame {t}");
        }
    }
}

#[test]
fn show_resolves_to_a_preset_with_the_same_parameters() {
    for (name, _) in BUILT_IN {
        let mut preset = Preset::load(name).unwrap();
        if preset.chain.iter().any(|e| e.name == "levels") {
            preset.set("levels.gamma=1.25").unwrap();
        }
        let shown = preset.show().unwrap();
        let again = Preset::parse(&shown, "shown.toml")
            .unwrap_or_else(|e| panic!("{name}: shown preset does not parse: {e:#}\n{shown}"));
        let a: Vec<_> = preset
            .build()
            .unwrap()
            .iter()
            .map(|s| s.params_json())
            .collect();
        let b: Vec<_> = again
            .build()
            .unwrap()
            .iter()
            .map(|s| s.params_json())
            .collect();
        assert_eq!(a, b, "{name}: shown preset means something else");
        if preset.chain.iter().any(|e| e.name == "levels") {
            assert!(shown.contains("gamma = 1.25\n"), "override not shown");
            assert!(shown.contains("black = 0.0  # default\n") || shown.contains("black = 0.0\n"));
        }
    }
}

#[test]
fn preset_errors_name_the_line_and_what_is_valid() {
    assert_says(
        &err("version = 1\n[[stage]]\nname = \"levels\"\ngamma = = 2\n"),
        &["p.toml:4", "not valid TOML"],
    );
    assert_says(
        &err("version = 1\nstages = 3\n"),
        &["p.toml:2", "unknown key 'stages'", "did you mean 'stage'?"],
    );
    assert_says(
        &err("version = 2\n"),
        &["p.toml:1", "version 2", "version = 1"],
    );
    assert_says(
        &err("[[stage]]\nname = \"levels\"\n"),
        &["missing 'version = 1'"],
    );
    assert_says(
        &err("version = 1\n\n[[stage]]\nname = \"levles\"\n"),
        &[
            "p.toml:4",
            "unknown stage 'levles'",
            "did you mean 'levels'?",
            "deflicker",
        ],
    );
    assert_says(
        &err("version = 1\n[[stage]]\nblack = 0.1\n"),
        &["p.toml:2", "no name"],
    );
    assert_says(
        &err("version = 1\n[[stage]]\nname = \"deflicker\"\n[[stage]]\nname = \"levels\"\n# the black point\nblak = 0.1\n"),
        &[
            "p.toml:7",
            "stage 'levels' has no parameter 'blak'",
            "did you mean 'black'?",
            "valid: black, white, gamma",
        ],
    );
    assert_says(
        &err("version = 1\n[[stage]]\nname = \"levels\"\nblack = 0.0\ngamma = 50\n"),
        &["p.toml:5", "levels.gamma = 50", "valid: 0.1 to 10"],
    );
    assert_says(
        &err("version = 1\n[[stage]]\nname = \"deflicker\"\nwindow = \"long\"\n"),
        &["p.toml:4", "deflicker"],
    );
}

#[test]
fn overrides_are_checked_applied_and_recorded() {
    let mut p = Preset::load("default").unwrap();
    let e = format!("{:#}", p.set("deflicker.strenght=0.5").unwrap_err());
    assert_says(
        &e,
        &["--set deflicker.strenght=0.5", "did you mean 'strength'?"],
    );
    let e = format!("{:#}", p.set("levels").unwrap_err());
    assert_says(&e, &["expected stage.key=value"]);
    p.select(&["levels".to_string()]).unwrap();
    let e = format!("{:#}", p.set("deflicker.strength=0.5").unwrap_err());
    assert_says(&e, &["not in the chain (levels)"]);
    p.set("levels.white=[0.9, 0.95, 1.0]").unwrap();
    let stage = &p.build().unwrap()[0];
    assert_eq!(
        stage.params_json()["white"],
        serde_json::json!([0.9, 0.95, 1.0])
    );
    let e = format!("{:#}", {
        p.set("levels.white=7").unwrap();
        p.build().map(|_| ()).unwrap_err()
    });
    assert_says(&e, &["levels.white = 7", "at most 2"]);
    // A value of the wrong type given by --set is blamed on the --set, not the preset's line.
    let mut p = Preset::load("default").unwrap();
    p.set("dust.dilate=abc").unwrap();
    let e = format!("{:#}", p.build().map(|_| ()).unwrap_err());
    assert_says(&e, &["--set dust.dilate=abc", "stage 'dust'", "dilate"]);
    assert!(!e.contains("built-in preset"), "{e}");
}

#[test]
fn presets_command_lists_shows_and_checks() {
    let nitrate = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nitrate"))
            .args(args)
            .output()
            .unwrap()
    };
    let list = nitrate(&["presets", "list"]);
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    for (name, _) in BUILT_IN {
        assert!(text.contains(name), "{name} not listed: {text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let shown = nitrate(&["presets", "show", "default"]);
    assert!(shown.status.success());
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &shown.stdout).unwrap();
    let check = nitrate(&["presets", "check", good.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[stage]]\nname = \"levels\"\ngama = 2\n",
    )
    .unwrap();
    let check = nitrate(&["presets", "check", bad.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_says(&stderr, &["bad.toml:4", "'gama'", "did you mean 'gamma'?"]);
    let missing = nitrate(&["presets", "show", "defualt"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_says(
        &String::from_utf8_lossy(&missing.stderr),
        &["no preset named 'defualt'", "did you mean 'default'?"],
    );
}
