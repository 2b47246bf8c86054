//! Collects each stage's parameter documentation (the `///` comments on the fields of its
//! `pub struct …Params` in `src/stages/<name>/mod.rs`) into a table for `nitrate presets show`
//! and for preset error messages, so the knobs are documented in one place only.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let stages = Path::new("src/stages");
    println!("cargo:rerun-if-changed=src/stages");
    let mut names: Vec<String> = std::fs::read_dir(stages)
        .expect("src/stages")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("mod.rs").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = String::from("pub const KNOB_DOCS: &[(&str, &[(&str, &str)])] = &[\n");
    for name in names {
        let text = std::fs::read_to_string(stages.join(&name).join("mod.rs")).expect("mod.rs");
        let knobs = params_docs(&text);
        write!(out, "    ({name:?}, &[").unwrap();
        for (key, doc) in knobs {
            write!(out, "({key:?}, {doc:?}), ").unwrap();
        }
        out.push_str("]),\n");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("knob_docs.rs");
    std::fs::write(dest, out).expect("write knob_docs.rs");
}

/// `(field, doc)` for each `pub` field of the first `pub struct …Params {` in `text`.
fn params_docs(text: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    for line in lines.by_ref() {
        let t = line.trim();
        if t.starts_with("pub struct ") && t.ends_with("Params {") {
            break;
        }
    }
    let (mut knobs, mut doc, mut rename) = (Vec::new(), Vec::<String>::new(), None);
    for line in lines {
        let t = line.trim();
        if line.starts_with('}') {
            break;
        }
        if let Some(d) = t.strip_prefix("///") {
            // Rustdoc links read as plain code names here.
            doc.push(d.trim().replace("[`", "`").replace("`]", "`"));
        } else if t.starts_with("#[") {
            if let Some(r) = t.split("rename = \"").nth(1) {
                rename = r.split('"').next().map(str::to_string);
            }
        } else if let Some(field) = t.strip_prefix("pub ") {
            let key = field.split(':').next().unwrap_or("").trim().to_string();
            knobs.push((rename.take().unwrap_or(key), doc.join(" ")));
            doc.clear();
        }
    }
    knobs
}
