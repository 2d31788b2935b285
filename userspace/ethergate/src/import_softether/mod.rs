//! `ethergate import-softether`: migrate a SoftEther VPN Server's
//! `vpn_server.config` to an ethergate config, so users keep their
//! passwords and clients keep their settings.
//!
//! Invariants: the written config is checked with the same validation as
//! `ethergate check` before the command reports success; every setting not
//! carried over is listed on stderr; files holding secrets (the config with
//! password hashes, the TLS key) are created 0600 and written atomically.

mod convert;
mod pem;

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, anyhow};
use ethergate_config::Config;

use crate::Failure;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The SoftEther server's config (Debian: /var/lib/softether/vpn_server.config).
    input: PathBuf,
    /// Write the ethergate config here (and the server certificate and key
    /// next to it as FILE.cert.pem / FILE.key.pem); default: stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replace existing output files.
    #[arg(long)]
    force: bool,
}

pub fn run(args: ImportArgs) -> Result<(), Failure> {
    let bytes = fs::read(&args.input)
        .map_err(|e| Failure::User(anyhow!("cannot read {}: {e}", args.input.display())))?;
    let root = crate::softether_cfg::parse(&bytes)
        .map_err(|e| Failure::User(anyhow!("{}: {e}", args.input.display())))?;
    let source = args.input.display().to_string();

    let Some(output) = &args.output else {
        let imported = convert::convert(&root, &source, None);
        validate(&imported.toml, "<stdout>")?;
        print!("{}", imported.toml);
        report(&imported.notes);
        return Ok(());
    };
    let output = absolute(output).map_err(Failure::User)?;
    let cert = sibling(&output, "cert.pem");
    let key = sibling(&output, "key.pem");
    let tls = convert::TlsPaths {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
    };
    let imported = convert::convert(&root, &source, Some(&tls));
    validate(&imported.toml, &output.display().to_string())?;
    let mut written = vec![output.clone()];
    if imported.identity.is_some() {
        written.extend([cert.clone(), key.clone()]);
    }
    // All or nothing: refuse before writing any file if one exists.
    if let Some(taken) = written.iter().find(|p| !args.force && p.exists()) {
        return Err(Failure::User(anyhow!(
            "{} exists; remove it, choose another -o, or pass --force",
            taken.display()
        )));
    }
    if let Some(id) = &imported.identity {
        write_new(&key, pem::private_key(&id.key_der).as_bytes(), args.force)?;
        write_new(
            &cert,
            pem::encode("CERTIFICATE", &id.cert_der).as_bytes(),
            args.force,
        )?;
    }
    write_new(&output, imported.toml.as_bytes(), args.force)?;
    report(&imported.notes);
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The same validation `ethergate check` runs; a failure here is a bug in
/// the conversion or a setting the operator must decide (overlapping hub
/// subnets), so the problems are shown and nothing is written.
fn validate(toml: &str, origin: &str) -> Result<(), Failure> {
    let config = Config::from_str_with_origin(toml, origin).map_err(|errors| {
        Failure::User(anyhow!(
            "the converted config does not pass `ethergate check` ({} problem(s)); nothing \
             written. Converted text:\n{toml}\nProblems:\n{errors}",
            errors.len()
        ))
    })?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

fn report(notes: &[String]) {
    if notes.is_empty() {
        eprintln!("import-softether: everything was carried over");
        return;
    }
    eprintln!("import-softether: not carried over, or changed on the way:");
    for note in notes {
        eprintln!("  - {note}");
    }
}

/// `out.toml` → `out.cert.pem`: the files travel together.
fn sibling(output: &Path, suffix: &str) -> PathBuf {
    let stem = output
        .file_stem()
        .map_or_else(|| "ethergate".into(), |s| s.to_string_lossy().into_owned());
    output.with_file_name(format!("{stem}.{suffix}"))
}

/// ethergate configs need absolute paths (tls_cert, tls_key).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("-o {} names no file", path.display()))?;
    let parent = parent
        .canonicalize()
        .with_context(|| format!("the directory of -o {}", path.display()))?;
    Ok(parent.join(name))
}

/// Writes `bytes` to a temp file (0600: configs hold password hashes, and
/// keys are keys), fsyncs it and renames it into place, so a crash leaves
/// either nothing or the whole file.
fn write_new(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    if !force && path.exists() {
        return Err(Failure::User(anyhow!(
            "{} exists; remove it, choose another -o, or pass --force",
            path.display()
        )));
    }
    let mode = crate::replace_file::FileMode {
        mode: 0o600,
        owner: None,
    };
    crate::replace_file::replace(path, bytes, mode)
        .map_err(|e| Failure::Runtime(anyhow!("cannot write {}: {e}", path.display())))
}
