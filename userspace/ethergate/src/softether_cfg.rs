//! SoftEther's text configuration format (Mayaqua/Cfg.c): read from a
//! server's `vpn_server.config` (import-softether) and written as a client
//! connection settings file (`.vpn`, `ethergate user profile`), both as a
//! tree of folders and typed items.
//!
//! The format: an optional UTF-8 byte-order mark, `#` comment lines, then
//! `declare NAME` / `{` / `}` for folders and `TYPE NAME VALUE` lines for
//! items, where TYPE is `uint`, `uint64`, `bool`, `string` or `byte`
//! (base64). Names and string values are escaped by `CfgEscape`: control
//! characters, space, tab and `$` become `$XX` (hex), and the empty string
//! is written as a lone `$`. Lines end in CRLF.
//!
//! Invariant: a [`Folder`] tree exists only if every line of the file was
//! understood; anything else is a [`CfgError`] naming the line. The file is
//! local and trusted more than a packet, but it is still parsed without
//! panicking and within [`MAX_CONFIG_BYTES`] / [`MAX_DEPTH`].

use ethergate_proto::password::base64_decode;

/// SoftEther keeps its whole config in memory and rewrites it every 5
/// minutes; a server with ~10 000 users writes ~20 MB. Anything past this is
/// not a SoftEther config.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024 * 1024;

/// The deepest real nesting is 7 (`root/VirtualHUB/HUB/SecurityAccountDatabase
/// /UserList/USER/Traffic/RecvTraffic`); leave room for future versions.
pub const MAX_DEPTH: usize = 32;

/// The header of SoftEther's binary config form (`TAG_BINARY`), which
/// servers write only when told to (`CfgSaveEx` without text mode).
const BINARY_TAG: &[u8] = b"SEVPN DB";

/// The folder every SoftEther config wraps its settings in (`TAG_ROOT`).
const ROOT: &str = "root";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Uint(u32),
    Uint64(u64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Folder {
    pub name: String,
    pub items: Vec<Item>,
    pub folders: Vec<Folder>,
}

/// Lookups compare names ASCII-case-insensitively, as SoftEther's
/// `CfgFindItem` / `CfgGetFolder` do (`StrCmpi`).
impl Folder {
    pub fn folder(&self, name: &str) -> Option<&Folder> {
        self.folders
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.items
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
            .map(|i| &i.value)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.value(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn uint(&self, name: &str) -> Option<u32> {
        match self.value(name) {
            Some(Value::Uint(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn uint64(&self, name: &str) -> Option<u64> {
        match self.value(name) {
            Some(Value::Uint64(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.value(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        match self.value(name) {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        }
    }
}

/// A problem with the file, and the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct CfgError {
    pub line: usize,
    pub kind: CfgErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CfgErrorKind {
    #[error("the file is larger than {MAX_CONFIG_BYTES} bytes; this is not a SoftEther config")]
    TooLarge,
    #[error(
        "this is SoftEther's binary config form; export the text form with \
         `vpncmd /SERVER … /CMD ConfigGet out.config`"
    )]
    Binary,
    #[error("the file is not UTF-8")]
    NotUtf8,
    #[error("expected \"{{\" after \"declare {0}\"")]
    NoOpenBrace(String),
    #[error("\"}}\" without a folder to close")]
    UnbalancedClose,
    #[error("folder {0:?} is never closed")]
    Unclosed(String),
    #[error("folders nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("\"declare\" needs exactly one name")]
    DeclareShape,
    #[error("an item line is \"TYPE NAME VALUE\"")]
    ItemShape,
    #[error("unknown item type {0:?} (SoftEther writes uint, uint64, bool, string, byte)")]
    UnknownType(String),
    #[error("{0:?} is not a {1}")]
    BadValue(String, &'static str),
    #[error("bad escape in {0:?} (expected $ and two hex digits)")]
    BadEscape(String),
    #[error("an item outside any folder")]
    ItemOutsideFolder,
    #[error("no \"declare root\" folder")]
    NoRoot,
}

/// Parses the text of a `vpn_server.config` and returns its `root` folder.
pub fn parse(bytes: &[u8]) -> Result<Folder, CfgError> {
    let err = |line, kind| CfgError { line, kind };
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(err(0, CfgErrorKind::TooLarge));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.starts_with(BINARY_TAG) {
        return Err(err(1, CfgErrorKind::Binary));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| err(0, CfgErrorKind::NotUtf8))?;

    // The stack holds the open folders; index 0 is a synthetic top level
    // that must end up holding exactly the root folder.
    let mut stack: Vec<Folder> = vec![Folder::default()];
    // Set by `declare`: the next meaningful line must be "{".
    let mut awaiting_brace: Option<(usize, String)> = None;
    let mut last_line = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        last_line = line;
        let tokens: Vec<&str> = raw
            .split([' ', '\t', '\r'])
            .filter(|t| !t.is_empty())
            .collect();
        let Some(&first) = tokens.first() else {
            continue;
        };
        if first.starts_with('#') || first.starts_with("//") {
            continue;
        }
        if let Some((_, name)) = awaiting_brace.take() {
            if tokens != ["{"] {
                return Err(err(line, CfgErrorKind::NoOpenBrace(name)));
            }
            if stack.len() > MAX_DEPTH {
                return Err(err(line, CfgErrorKind::TooDeep));
            }
            stack.push(Folder {
                name,
                ..Folder::default()
            });
            continue;
        }
        match first {
            "declare" => {
                let [_, name] = tokens[..] else {
                    return Err(err(line, CfgErrorKind::DeclareShape));
                };
                awaiting_brace = Some((line, unescape(name).map_err(|k| err(line, k))?));
            }
            "}" if tokens.len() == 1 => {
                if stack.len() < 2 {
                    return Err(err(line, CfgErrorKind::UnbalancedClose));
                }
                let done = stack.pop().expect("checked: two or more on the stack");
                stack
                    .last_mut()
                    .expect("checked: one is left")
                    .folders
                    .push(done);
            }
            _ => {
                let item = parse_item(&tokens).map_err(|k| err(line, k))?;
                if stack.len() < 2 {
                    return Err(err(line, CfgErrorKind::ItemOutsideFolder));
                }
                stack
                    .last_mut()
                    .expect("checked: two or more on the stack")
                    .items
                    .push(item);
            }
        }
    }
    if let Some((line, name)) = awaiting_brace {
        return Err(err(line, CfgErrorKind::NoOpenBrace(name)));
    }
    if stack.len() > 1 {
        let name = stack.pop().map(|f| f.name).unwrap_or_default();
        return Err(err(last_line, CfgErrorKind::Unclosed(name)));
    }
    let top = stack.pop().unwrap_or_default();
    top.folders
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(ROOT))
        .ok_or(err(last_line, CfgErrorKind::NoRoot))
}

fn parse_item(tokens: &[&str]) -> Result<Item, CfgErrorKind> {
    let [kind, name, value] = tokens[..] else {
        return Err(CfgErrorKind::ItemShape);
    };
    let name = unescape(name)?;
    let text = unescape(value)?;
    let bad = |what| CfgErrorKind::BadValue(text.clone(), what);
    let value = match kind {
        "uint" => Value::Uint(text.parse().map_err(|_| bad("uint (0 to 4294967295)"))?),
        "uint64" => Value::Uint64(text.parse().map_err(|_| bad("uint64"))?),
        // SoftEther writes "true"/"false" and reads with StrCmpi.
        "bool" if text.eq_ignore_ascii_case("true") => Value::Bool(true),
        "bool" if text.eq_ignore_ascii_case("false") => Value::Bool(false),
        "bool" => return Err(bad("bool (true or false)")),
        "string" => Value::Str(text),
        "byte" => Value::Bytes(base64_decode(&text).map_err(|_| bad("base64 byte string"))?),
        other => return Err(CfgErrorKind::UnknownType(other.to_owned())),
    };
    Ok(Item { name, value })
}

/// Reverses `CfgEscape`: `$XX` is the byte 0xXX; a lone `$` is "".
pub fn unescape(token: &str) -> Result<String, CfgErrorKind> {
    if token == "$" {
        return Ok(String::new());
    }
    let bad = || CfgErrorKind::BadEscape(token.to_owned());
    let mut out = Vec::with_capacity(token.len());
    let mut bytes = token.bytes();
    while let Some(b) = bytes.next() {
        if b != b'$' {
            out.push(b);
            continue;
        }
        let (Some(hi), Some(lo)) = (bytes.next(), bytes.next()) else {
            return Err(bad());
        };
        let hex = |c: u8| (c as char).to_digit(16);
        match (hex(hi), hex(lo)) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Err(bad()),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// `CfgEscape`: what SoftEther writes for a name or string value; kept next
/// to [`unescape`] so they stay inverse.
pub fn escape(s: &str) -> String {
    if s.is_empty() {
        return "$".to_owned();
    }
    // CfgCheckCharForName: control characters, space, tab and '$' are
    // escaped; bytes >= 0x80 pass through, so UTF-8 sequences stay whole.
    let mut fixed = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && ((c as u8) <= 31 || c == ' ' || c == '$') {
            fixed.push_str(&format!("${:02X}", c as u8));
        } else {
            fixed.push(c);
        }
    }
    fixed
}

/// Writes `root` as SoftEther writes a config file: a UTF-8 byte-order
/// mark, `header` as `#` comment lines, then the tree with tab indents and
/// CRLF line ends, each folder's items before its subfolders.
pub fn render(root: &Folder, header: &[&str]) -> String {
    let mut out = String::from("\u{FEFF}");
    for line in header {
        out.push_str("# ");
        out.push_str(line);
        out.push_str("\r\n");
    }
    render_folder(&mut out, root, 0);
    out
}

fn render_folder(out: &mut String, folder: &Folder, depth: usize) {
    let indent = "\t".repeat(depth);
    out.push_str(&format!(
        "{indent}declare {}\r\n{indent}{{\r\n",
        escape(&folder.name)
    ));
    for item in &folder.items {
        let (kind, value) = match &item.value {
            Value::Uint(v) => ("uint", v.to_string()),
            Value::Uint64(v) => ("uint64", v.to_string()),
            Value::Bool(v) => ("bool", v.to_string()),
            Value::Str(v) => ("string", escape(v)),
            Value::Bytes(v) => ("byte", escape(&ethergate_proto::password::base64_encode(v))),
        };
        out.push_str(&format!(
            "{indent}\t{kind} {} {value}\r\n",
            escape(&item.name)
        ));
    }
    for (i, sub) in folder.folders.iter().enumerate() {
        if i > 0 || !folder.items.is_empty() {
            out.push_str("\r\n");
        }
        render_folder(out, sub, depth + 1);
    }
    out.push_str(&format!("{indent}}}\r\n"));
}

#[cfg(test)]
mod tests;
