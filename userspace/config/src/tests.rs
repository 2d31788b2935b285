//! Whole-file tests: every validation rule, its message and its line.

use super::*;

#[test]
fn embedded_default_parses_without_errors_or_warnings() {
    let config = Config::from_str_with_origin(DEFAULT_CONFIG, "ethergate.toml")
        .unwrap_or_else(|e| panic!("default config is invalid:\n{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    println!("{config:#?}");
}
