//! `ethergate import-softether`, end to end minus the file IO: any bytes
//! given as a `vpn_server.config` are parsed (Mayaqua's text format), a
//! parsed tree written back the way SoftEther writes it parses to the same
//! tree, and the tree converts to an ethergate config that `ethergate
//! check`'s validation then reads — all without panicking.
//!
//! The importer lives in the `ethergate` binary crate, which has no library
//! target. Rather than turn the daemon into a library (a public API for
//! the sake of a fuzzer) or move the importer to a crate of its own, this
//! target compiles the importer's pure modules by path: `softether_cfg`
//! (the parser and writer), `convert` and `pem` depend only on `ethergate-proto`,
//! `ethergate-config` and `thiserror`, never on the rest of the daemon, so
//! the fuzzer runs exactly the code `import-softether` runs. (If one of
//! them ever needs `crate::…`, this build breaks loudly rather than drifts.)
#![no_main]

// `rustfmt::skip`: these files are formatted with the `ethergate` crate;
// rustfmt would otherwise look for their `#[cfg(test)]` submodules next to
// them, where `#[path]` puts a module's children, and fail.
#[rustfmt::skip]
#[path = "../../src/softether_cfg.rs"]
mod softether_cfg;
#[rustfmt::skip]
#[path = "../../src/import_softether/convert.rs"]
mod convert;
#[rustfmt::skip]
#[path = "../../src/import_softether/pem.rs"]
mod pem;

use cfg::{Folder, Value};
use ethergate_proto::password::base64_encode;
use libfuzzer_sys::fuzz_target;
use softether_cfg as cfg;

fuzz_target!(|data: &[u8]| {
    let Ok(root) = cfg::parse(data) else {
        return;
    };

    // Written back by an independent writer, and by the one
    // `ethergate user profile` uses: both parse to the same tree.
    let mut text = String::new();
    emit(&root, 0, &mut text);
    assert_eq!(
        cfg::parse(text.as_bytes()).as_ref(),
        Ok(&root),
        "written back:\n{text}"
    );
    let rendered = cfg::render(&root, &["fuzz"]);
    assert_eq!(
        cfg::parse(rendered.as_bytes()).as_ref(),
        Ok(&root),
        "rendered:\n{rendered}"
    );

    let tls = convert::TlsPaths {
        cert: "/etc/ethergate/fuzz.cert.pem".into(),
        key: "/etc/ethergate/fuzz.key.pem".into(),
    };
    for tls in [None, Some(&tls)] {
        let imported = convert::convert(&root, "fuzz.config", tls);
        std::hint::black_box(&imported.notes);
        let _ = ethergate_config::Config::from_str_with_origin(&imported.toml, "fuzz");
        if let Some(id) = &imported.identity {
            let _ = pem::private_key(&id.key_der);
            let _ = pem::encode("CERTIFICATE", &id.cert_der);
        }
    }
});

/// `CfgOutputFolderText`: tab indents, CRLF, items before folders.
fn emit(folder: &Folder, depth: usize, out: &mut String) {
    let tabs = "\t".repeat(depth);
    out.push_str(&format!(
        "{tabs}declare {}\r\n{tabs}{{\r\n",
        escape(&folder.name)
    ));
    for item in &folder.items {
        let (kind, text) = match &item.value {
            Value::Uint(n) => ("uint", n.to_string()),
            Value::Uint64(n) => ("uint64", n.to_string()),
            Value::Bool(b) => ("bool", b.to_string()),
            Value::Str(s) => ("string", escape(s)),
            Value::Bytes(b) => ("byte", escape(&base64_encode(b))),
        };
        out.push_str(&format!("{tabs}\t{kind} {} {text}\r\n", escape(&item.name)));
    }
    for sub in &folder.folders {
        emit(sub, depth + 1, out);
    }
    out.push_str(&format!("{tabs}}}\r\n"));
}

/// `CfgEscape`, written independently of the module's own:
/// control characters, space and `$` become `$XX`; "" is a lone `$`.
fn escape(s: &str) -> String {
    if s.is_empty() {
        return "$".to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && ((c as u8) <= b' ' || c == '$') {
            out.push_str(&format!("${:02X}", c as u8));
        } else {
            out.push(c);
        }
    }
    out
}
