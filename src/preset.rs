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

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::stages::{self, Stage};

/// Presets shipped in `presets/`, embedded so the binary needs no install step.
pub const BUILT_IN: &[(&str, &str)] = &[("default", include_str!("../presets/default.toml"))];

/// A preset resolved to its chain: stage names (canonical) and their parameter tables.
#[derive(Clone, Debug)]
pub struct Preset {
    /// Built-in name or file path, for messages and the record.
    pub source: String,
    pub text: String,
    pub chain: Vec<(String, toml::Table)>,
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
            "no preset named '{name_or_path}' (built in: {}; or give a .toml file path)",
            names.join(", ")
        )
    }

    pub fn parse(text: &str, source: &str) -> Result<Preset> {
        let table: toml::Table =
            toml::from_str(text).with_context(|| format!("{source}: not valid TOML"))?;
        for key in table.keys() {
            if !["version", "stage", "description"].contains(&key.as_str()) {
                bail!("{source}: unknown key '{key}' (valid: version, description, stage)");
            }
        }
        match table.get("version").and_then(|v| v.as_integer()) {
            Some(1) => {}
            Some(v) => bail!(
                "{source}: preset version {v} is not supported (this nitrate reads version 1)"
            ),
            None => bail!("{source}: missing 'version = 1'"),
        }
        let mut chain = Vec::new();
        if let Some(list) = table.get("stage") {
            let list = list.as_array().with_context(|| {
                format!("{source}: 'stage' must be an array of tables ([[stage]])")
            })?;
            for (i, entry) in list.iter().enumerate() {
                let mut params = entry
                    .as_table()
                    .with_context(|| format!("{source}: stage {} is not a table", i + 1))?
                    .clone();
                let name = match params.remove("name") {
                    Some(toml::Value::String(s)) => s,
                    _ => bail!("{source}: stage {} has no name = \"...\"", i + 1),
                };
                let canon = stages::canonical_name(&name)
                    .with_context(|| format!("{source}: stage {}", i + 1))?;
                chain.push((canon.to_string(), params));
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
            let params = self
                .chain
                .iter()
                .find(|(n, _)| n == canon)
                .map(|(_, p)| p.clone())
                .unwrap_or_default();
            chain.push((canon.to_string(), params));
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
        let value = parse_value(value.trim());
        let Some((_, params)) = self.chain.iter_mut().find(|(n, _)| n == canon) else {
            let chain: Vec<&str> = self.chain.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "--set {assignment}: stage '{canon}' is not in the chain ({})",
                chain.join(", ")
            );
        };
        params.insert(key.trim().to_string(), value);
        Ok(())
    }

    /// Set `stage.key` to `value` if the stage is in the chain and the key is not set already
    /// (or `force`); returns whether the stage is in the chain.
    pub fn set_value(&mut self, stage: &str, key: &str, value: toml::Value, force: bool) -> bool {
        let Some((_, params)) = self.chain.iter_mut().find(|(n, _)| n == stage) else {
            return false;
        };
        if force || !params.contains_key(key) {
            params.insert(key.to_string(), value);
        }
        true
    }

    /// Build the stages; parameter errors name the preset.
    pub fn build(&self) -> Result<Vec<Box<dyn Stage>>> {
        self.chain
            .iter()
            .map(|(name, params)| stages::build(name, params).with_context(|| self.source.clone()))
            .collect()
    }
}

fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}
