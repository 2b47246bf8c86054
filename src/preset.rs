//! Presets: TOML files naming the stage chain in order with each stage's parameters.
//!
//! ```toml
//! version = 1
//! [[stage]]
//! name = "levels"
//! black = 0.04
//! ```
//! Built-in presets live in `presets/` and are embedded in the binary; `--preset` takes one of
//! their names or a file path. `--stages` picks and orders stages; `--set stage.key=value`
//! overrides single parameters.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::stages::{self, Stage};

/// Presets shipped in `presets/`, embedded so the binary needs no install step.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../presets/default.toml")),
    (
        "archival-minimal",
        include_str!("../presets/archival-minimal.toml"),
    ),
    (
        "35mm-print-worn",
        include_str!("../presets/35mm-print-worn.toml"),
    ),
    (
        "16mm-reversal",
        include_str!("../presets/16mm-reversal.toml"),
    ),
    (
        "8mm-home-movie",
        include_str!("../presets/8mm-home-movie.toml"),
    ),
    (
        "faded-eastmancolor",
        include_str!("../presets/faded-eastmancolor.toml"),
    ),
    ("bw-nitrate", include_str!("../presets/bw-nitrate.toml")),
    ("remaster-4k", include_str!("../presets/remaster-4k.toml")),
];

/// Keys a preset may have at its top level.
const TOP_KEYS: &[&str] = &["version", "description", "stage"];

/// One stage of a preset's chain.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Canonical stage name.
    pub name: String,
    /// The parameters the preset (or an override) sets; the rest take the stage's defaults.
    pub params: toml::Table,
    /// Which `[[stage]]` block of the preset text it came from (for line numbers in errors);
    /// `None` for a stage added by `--stages`.
    block: Option<usize>,
    /// Keys set by `--set`, with the assignment as given (errors blame it, not the preset).
    from_set: BTreeMap<String, String>,
}

/// A preset resolved to its chain: stage names (canonical) and their parameter tables.
#[derive(Clone, Debug)]
pub struct Preset {
    /// Built-in name or file path, for messages and the record.
    pub source: String,
    pub text: String,
    pub chain: Vec<Entry>,
}

impl Preset {
    /// Load a built-in preset by name, or a preset file by path.
    pub fn load(name_or_path: &str) -> Result<Preset> {
        if let Some((name, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Preset::parse(text, &format!("built-in preset '{name}'"));
        }
        let path = Path::new(name_or_path);
        if path.is_file() || name_or_path.ends_with(".toml") {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read preset", path.display()))?;
            return Preset::parse(&text, &path.display().to_string());
        }
        let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        bail!(
            "no preset named '{name_or_path}'{} (built in: {}; or give a .toml file path)",
            did_you_mean(name_or_path, &names),
            names.join(", ")
        )
    }

    /// Parse preset text; every error names `source`, the line and what is valid there.
    /// Parameter values are checked by [`Preset::build`].
    pub fn parse(text: &str, source: &str) -> Result<Preset> {
        let at = |block: Option<usize>, key: &str| match key_line(text, block, key) {
            Some(line) => format!("{source}:{line}"),
            None => source.to_string(),
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let place = line.map_or(source.to_string(), |l| format!("{source}:{l}"));
            anyhow!("{place}: not valid TOML: {}", e.message().trim())
        })?;
        for key in table.keys() {
            if !TOP_KEYS.contains(&key.as_str()) {
                bail!(
                    "{}: unknown key '{key}'{} (valid: {})",
                    at(None, key),
                    did_you_mean(key, TOP_KEYS),
                    TOP_KEYS.join(", ")
                );
            }
        }
        match table.get("version") {
            Some(toml::Value::Integer(1)) => {}
            Some(v) => bail!(
                "{}: preset version {v} is not supported (this nitrate reads version = 1)",
                at(None, "version")
            ),
            None => bail!("{source}: missing 'version = 1'"),
        }
        let mut chain = Vec::new();
        if let Some(list) = table.get("stage") {
            let list = list.as_array().with_context(|| {
                format!(
                    "{}: 'stage' must be an array of tables ([[stage]])",
                    at(None, "stage")
                )
            })?;
            for (i, entry) in list.iter().enumerate() {
                let block = Some(i);
                let mut params = entry
                    .as_table()
                    .with_context(|| format!("{source}: stage {} is not a table", i + 1))?
                    .clone();
                let name = match params.remove("name") {
                    Some(toml::Value::String(s)) => s,
                    _ => bail!(
                        "{}: stage {} has no name = \"...\" (stages: {})",
                        at_block(text, source, i),
                        i + 1,
                        stage_names().join(", ")
                    ),
                };
                let canon = stages::canonical_name(&name).map_err(|_| {
                    anyhow!(
                        "{}: unknown stage '{name}'{} (stages: {})",
                        at(block, "name"),
                        did_you_mean(&name, &stage_names()),
                        stage_names().join(", ")
                    )
                })?;
                for key in params.keys() {
                    check_key(canon, key).with_context(|| at(block, key))?;
                }
                chain.push(Entry {
                    name: canon.to_string(),
                    params,
                    block,
                    from_set: BTreeMap::new(),
                });
            }
        }
        Ok(Preset {
            source: source.to_string(),
            text: text.to_string(),
            chain,
        })
    }

    /// Keep only the stages named, in the order named; a stage the preset lacks gets defaults.
    pub fn select(&mut self, names: &[String]) -> Result<()> {
        let mut chain = Vec::new();
        for name in names {
            let canon = stages::canonical_name(name)?;
            let entry = self
                .chain
                .iter()
                .find(|e| e.name == canon)
                .cloned()
                .unwrap_or_else(|| Entry {
                    name: canon.to_string(),
                    params: toml::Table::new(),
                    block: None,
                    from_set: BTreeMap::new(),
                });
            chain.push(entry);
        }
        self.chain = chain;
        Ok(())
    }

    /// Apply `stage.key=value`; the value is read as TOML (numbers, arrays, booleans), or as
    /// a string when it is not valid TOML.
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let (lhs, value) = assignment
            .split_once('=')
            .with_context(|| format!("--set {assignment}: expected stage.key=value"))?;
        let (stage, key) = lhs
            .trim()
            .split_once('.')
            .with_context(|| format!("--set {assignment}: expected stage.key=value"))?;
        let canon = stages::canonical_name(stage).with_context(|| format!("--set {assignment}"))?;
        let key = key.trim();
        check_key(canon, key).with_context(|| format!("--set {assignment}"))?;
        let value = parse_value(value.trim());
        let Some(entry) = self.chain.iter_mut().find(|e| e.name == canon) else {
            bail!(
                "--set {assignment}: stage '{canon}' is not in the chain ({})",
                self.stage_list()
            );
        };
        entry.params.insert(key.to_string(), value);
        entry
            .from_set
            .insert(key.to_string(), assignment.trim().to_string());
        Ok(())
    }

    /// Set `stage.key` to `value` if the stage is in the chain and the key is not set already
    /// (or `force`); returns whether the stage is in the chain.
    pub fn set_value(&mut self, stage: &str, key: &str, value: toml::Value, force: bool) -> bool {
        let Some(entry) = self.chain.iter_mut().find(|e| e.name == stage) else {
            return false;
        };
        if force || !entry.params.contains_key(key) {
            entry.params.insert(key.to_string(), value);
        }
        true
    }

    /// Build the stages; a bad value is reported with the preset's file and line.
    pub fn build(&self) -> Result<Vec<Box<dyn Stage>>> {
        self.chain
            .iter()
            .map(|entry| {
                stages::build(&entry.name, &entry.params).map_err(|e| {
                    let text = format!("{e:#}");
                    // The line of the first key the message names, else the stage's block.
                    let key = entry.params.keys().find(|k| {
                        [
                            format!("{}.{k}", entry.name),
                            format!("`{k}`"),
                            format!("'{k}'"),
                        ]
                        .iter()
                        .any(|form| text.contains(form.as_str()))
                    });
                    let place = match (entry.block, key) {
                        // A value given on the command line is blamed there.
                        (_, Some(k)) if entry.from_set.contains_key(k) => {
                            format!("--set {}", entry.from_set[k])
                        }
                        (Some(_), Some(k)) => match key_line(&self.text, entry.block, k) {
                            Some(line) => format!("{}:{line}", self.source),
                            None => self.source.clone(),
                        },
                        (Some(b), None) => at_block(&self.text, &self.source, b),
                        (None, _) => self.source.clone(),
                    };
                    e.context(format!("{place}: stage '{}'", entry.name))
                })
            })
            .collect()
    }

    /// The chain's stage names, comma-separated.
    pub fn stage_list(&self) -> String {
        let names: Vec<&str> = self.chain.iter().map(|e| e.name.as_str()).collect();
        names.join(", ")
    }

    /// The preset fully resolved, as a preset file: every knob of every stage with its value
    /// (set by the preset, or the stage's default, marked so) and its documentation.
    pub fn show(&self) -> Result<String> {
        let stages = self.build()?;
        let mut out = format!(
            "# {} resolved: every parameter of every stage, with its meaning.\n\
             # Values the preset does not set are the stage's defaults (marked \"default\").\n\
             version = 1\n",
            self.source
        );
        for (entry, stage) in self.chain.iter().zip(&stages) {
            out.push_str(&format!("\n[[stage]]\nname = \"{}\"\n", entry.name));
            let resolved = stage.params_json();
            for (key, doc) in stages::knobs(&entry.name) {
                out.push_str(&comment(doc));
                let value = short_floats(resolved.get(*key).cloned().unwrap_or_default());
                let line = match toml::Value::try_from(&value) {
                    Ok(v) if !value.is_null() => format!("{key} = {v}"),
                    _ => format!("# {key} = (not set)"),
                };
                let default = if entry.params.contains_key(*key) || value.is_null() {
                    ""
                } else {
                    "  # default"
                };
                out.push_str(&format!("{line}{default}\n"));
            }
        }
        Ok(out)
    }
}

/// Numbers that are `f32` parameters widened to `f64` written as the `f32` prints (`0.002`, not
/// `0.0020000000949949026`): the same value once parsed back into the parameter.
fn short_floats(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(v) if n.is_f64() && (v as f32) as f64 == v => {
                let short: f64 = format!("{}", v as f32).parse().unwrap_or(v);
                serde_json::Number::from_f64(short).map_or(Value::Number(n), Value::Number)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(short_floats).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, short_floats(v))).collect())
        }
        other => other,
    }
}

/// Each built-in preset with the first sentence of its `# Suits:` comment.
pub fn list() -> Vec<(&'static str, String)> {
    BUILT_IN
        .iter()
        .map(|(name, text)| {
            let mut words = Vec::new();
            let mut lines = text.lines().map(str::trim);
            if let Some(first) = lines.find_map(|l| l.strip_prefix("# Suits:")) {
                words.push(first.trim());
                words.extend(
                    lines
                        .map_while(|l| l.strip_prefix('#'))
                        .take_while(|l| !l.trim().is_empty())
                        .map(str::trim),
                );
            }
            let text = words.join(" ");
            let sentence = match text.find(". ") {
                Some(end) => &text[..=end],
                None => text.as_str(),
            };
            (*name, sentence.to_string())
        })
        .collect()
}

fn stage_names() -> Vec<&'static str> {
    stages::STAGE_NAMES.iter().map(|(n, _)| *n).collect()
}

/// An unknown parameter named with the nearest valid one and the full list.
fn check_key(stage: &str, key: &str) -> Result<()> {
    let valid: Vec<&str> = stages::knobs(stage).iter().map(|(k, _)| *k).collect();
    if valid.contains(&key) {
        return Ok(());
    }
    bail!(
        "stage '{stage}' has no parameter '{key}'{} (valid: {})",
        did_you_mean(key, &valid),
        valid.join(", ")
    )
}

/// ` (did you mean 'x'?)` for the candidate nearest `word` in edit distance, when near enough.
fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min()
        .map(|(_, c)| format!(" (did you mean '{c}'?)"))
        .unwrap_or_default()
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// 1-based line numbers of the `[[stage]]` headers.
fn stage_headers(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim().starts_with("[[stage]]"))
        .map(|(i, _)| i + 1)
        .collect()
}

/// `source:line` of the `block`th `[[stage]]` header.
fn at_block(text: &str, source: &str, block: usize) -> String {
    match stage_headers(text).get(block) {
        Some(line) => format!("{source}:{line}"),
        None => source.to_string(),
    }
}

/// 1-based line of `key = …` at the top level (`block` None) or in the `block`th `[[stage]]`.
fn key_line(text: &str, block: Option<usize>, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let first = match block {
        None => 0,
        Some(b) => *stage_headers(text).get(b)?,
    };
    lines
        .iter()
        .enumerate()
        .skip(first)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

/// Documentation as `# ` comment lines wrapped at 96 columns.
fn comment(doc: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in doc.split_whitespace() {
        if line.len() + 1 + word.len() > 96 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}
