//! Typed, span-keeping access to the parsed TOML tree.
//!
//! The file is parsed once into toml's spanned tree (`DeTable`), then each
//! section reads its keys through a [`Section`]. Unlike serde's
//! `deny_unknown_fields`, which stops at the first surprise, a `Section`
//! records every wrong type, missing key and unknown key in the
//! [`Report`] and carries on, so `ethergate check` can list them all.
//! Invariant: every key a section reads is in its `known` list, and
//! [`Section::finish`] reports each key of the table that was never read.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::Report;

/// A value and the byte offset where it was written (only the start
/// matters: messages name a line and column).
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<T> {
    pub value: T,
    pub pos: usize,
}

fn at<T>(value: T, span: Range<usize>) -> At<T> {
    At {
        value,
        pos: span.start,
    }
}

/// One TOML table being read, with the words that put its messages in
/// context: `hub "mikalab": ` + `dhcp.` + `range`.
pub(crate) struct Section<'a, 'i> {
    table: &'a DeTable<'i>,
    pos: usize,
    /// Names the enclosing object, e.g. `hub "mikalab": `; may be empty.
    context: String,
    /// Dotted path of this table inside that object, e.g. `dhcp.`.
    prefix: String,
    /// The table's TOML name, e.g. `hub.dhcp`; empty for the root.
    header: String,
    known: &'static [&'static str],
    read: Vec<&'static str>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// A root table or an element of an array of tables (`[[hub]]`), whose
    /// keys are named in messages without a dotted prefix.
    pub fn new(
        table: &'a DeTable<'i>,
        pos: usize,
        context: impl Into<String>,
        header: impl Into<String>,
        known: &'static [&'static str],
    ) -> Self {
        Self {
            table,
            pos,
            context: context.into(),
            prefix: String::new(),
            header: header.into(),
            known,
            read: Vec::new(),
        }
    }

    /// Where the table starts (its header), for "missing key" messages.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Message lead-in: context plus the key's dotted name.
    pub fn name(&self, key: &str) -> String {
        format!("{}{}{}", self.context, self.prefix, key)
    }

    /// Renames the enclosing object once its name is known, e.g. from
    /// `hub[1]: ` to `hub "mikalab": `.
    pub fn set_context(&mut self, context: String) {
        self.context = context;
    }

    /// Whether the table has `key`, without marking it read.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        debug_assert!(self.known.contains(&key), "{key} missing from known keys");
        self.read.push(key);
        self.table.get(key)
    }

    fn wrong_type(&self, report: &mut Report, key: &str, v: &Spanned<DeValue>, want: &str) {
        report.error(
            v.span().start,
            format!(
                "{} must be {want}, not {} {}",
                self.name(key),
                article(v.get_ref().type_str()),
                v.get_ref().type_str()
            ),
        );
    }

    /// Reports a missing required key at the table's header.
    pub fn missing(&self, report: &mut Report, key: &str, example: &str) {
        let table = if self.prefix.is_empty() {
            String::new()
        } else {
            format!(" in [{}]", self.header)
        };
        report.error(
            self.pos,
            format!(
                "{}missing {key}{table}; add e.g. {key} = {example}",
                self.context
            ),
        );
    }

    pub fn string(&mut self, report: &mut Report, key: &'static str) -> Option<At<&'a str>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(at(s.as_ref(), v.span())),
            _ => {
                self.wrong_type(report, key, v, "a string");
                None
            }
        }
    }

    pub fn required_string(
        &mut self,
        report: &mut Report,
        key: &'static str,
        example: &str,
    ) -> Option<At<&'a str>> {
        let present = self.table.contains_key(key);
        let s = self.string(report, key);
        if !present {
            self.missing(report, key, example);
        }
        s
    }

    pub fn boolean(&mut self, report: &mut Report, key: &'static str) -> Option<At<bool>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(at(*b, v.span())),
            _ => {
                self.wrong_type(report, key, v, "true or false");
                None
            }
        }
    }

    pub fn integer(&mut self, report: &mut Report, key: &'static str) -> Option<At<i128>> {
        let v = self.get(key)?;
        let parsed = v
            .get_ref()
            .as_integer()
            .and_then(|i| i128::from_str_radix(i.as_str(), i.radix()).ok());
        match parsed {
            Some(n) => Some(at(n, v.span())),
            None => {
                self.wrong_type(report, key, v, "an integer");
                None
            }
        }
    }

    /// A string or an array of strings, as for `to = "masquerade"` vs
    /// `to = ["198.51.100.1", "198.51.100.2"]`.
    pub fn string_or_list(
        &mut self,
        report: &mut Report,
        key: &'static str,
    ) -> Option<OneOrMany<'a>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(OneOrMany::One(at(s.as_ref(), v.span()))),
            DeValue::Array(_) => self
                .strings_of(report, key, v)
                .map(|list| OneOrMany::Many(at(list, v.span()))),
            _ => {
                self.wrong_type(report, key, v, "a string or an array of strings");
                None
            }
        }
    }

    /// An array of strings. Each element of another type is reported, and
    /// then the whole list is `None`: checks on a broken list are noise.
    pub fn string_list(
        &mut self,
        report: &mut Report,
        key: &'static str,
    ) -> Option<At<Vec<At<&'a str>>>> {
        let v = self.get(key)?;
        self.strings_of(report, key, v).map(|l| at(l, v.span()))
    }

    fn strings_of(
        &self,
        report: &mut Report,
        key: &str,
        v: &'a Spanned<DeValue<'i>>,
    ) -> Option<Vec<At<&'a str>>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(report, key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(at(s.as_ref(), item.span())),
                other => {
                    ok = false;
                    report.error(
                        item.span().start,
                        format!(
                            "{} must hold only strings, not {} {}",
                            self.name(key),
                            article(other.type_str()),
                            other.type_str()
                        ),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// A sub-table such as `[hub.dhcp]`. Messages keep this section's
    /// context and extend its dotted prefix.
    pub fn table(
        &mut self,
        report: &mut Report,
        key: &'static str,
        known: &'static [&'static str],
    ) -> Option<Section<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Section {
                table: t,
                pos: v.span().start,
                context: self.context.clone(),
                prefix: format!("{}{key}.", self.prefix),
                header: if self.header.is_empty() {
                    key.to_owned()
                } else {
                    format!("{}.{key}", self.header)
                },
                known,
                read: Vec::new(),
            }),
            _ => {
                self.wrong_type(report, key, v, "a table");
                None
            }
        }
    }

    /// An array of tables such as `[[hub]]`; each element with its span.
    /// The caller gives each element its own context.
    pub fn tables(
        &mut self,
        report: &mut Report,
        key: &'static str,
    ) -> Vec<(&'a DeTable<'i>, usize)> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            let header = if self.header.is_empty() {
                format!("[[{key}]]")
            } else {
                format!("[[{}.{key}]]", self.header)
            };
            self.wrong_type(
                report,
                key,
                v,
                &format!("an array of tables, written {header}"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((t, item.span().start)),
                other => report.error(
                    item.span().start,
                    format!(
                        "{} must hold only tables, not {} {}",
                        self.name(key),
                        article(other.type_str()),
                        other.type_str()
                    ),
                ),
            }
        }
        out
    }

    /// Reports every key that no reader asked for.
    pub fn finish(self, report: &mut Report) {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if !self.read.contains(&name) {
                let place = if self.prefix.is_empty() && self.context.is_empty() {
                    " at the top level".to_owned()
                } else if self.prefix.is_empty() {
                    String::new()
                } else {
                    format!(" in [{}]", self.header)
                };
                report.error(
                    key.span().start,
                    format!(
                        "{}unknown key {name:?}{place}; known keys are {}",
                        self.context,
                        self.known.join(", ")
                    ),
                );
            }
        }
    }
}

/// A string, or an array of strings.
pub(crate) enum OneOrMany<'a> {
    One(At<&'a str>),
    Many(At<Vec<At<&'a str>>>),
}

fn article(type_name: &str) -> &'static str {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
