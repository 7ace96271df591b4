//! Where a wallet command's secrets come from: a file named on the command line, an
//! environment variable (for scripts), or a hidden prompt on the terminal (a new password is
//! asked twice). Secrets stay in zeroizing buffers and are never echoed.

use std::{io::IsTerminal, path::Path};

use eyre::{WrapErr, bail};
use zeroize::Zeroizing;

/// Shortest new wallet password accepted.
const MIN_PASSWORD_LEN: usize = 8;

/// Environment variable holding the wallet password for scripts.
pub const PASSWORD_ENV: &str = "AICOIN_WALLET_PASSWORD";

fn read_file(path: &Path, what: &str) -> eyre::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .wrap_err_with(|| format!("cannot read the {what} file {}", path.display()))?,
    );
    // Files usually end with a newline that is not part of the secret.
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

fn prompt(label: &str) -> eyre::Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no terminal to ask for the {label} on: give it with a file option or {PASSWORD_ENV}"
        );
    }
    Ok(Zeroizing::new(rpassword::prompt_password(format!(
        "{label}: "
    ))?))
}

/// The password of an existing wallet or keystore.
pub fn password(file: Option<&Path>, env: &str, label: &str) -> eyre::Result<Zeroizing<String>> {
    if let Some(path) = file {
        return read_file(path, label);
    }
    if let Ok(value) = std::env::var(env) {
        return Ok(Zeroizing::new(value));
    }
    prompt(label)
}

/// A new wallet password: from the same sources, but asked twice on a terminal, and refused
/// when too short.
pub fn new_password(file: Option<&Path>) -> eyre::Result<Zeroizing<String>> {
    let password = match (file, std::env::var(PASSWORD_ENV)) {
        (Some(path), _) => read_file(path, "password")?,
        (None, Ok(value)) => Zeroizing::new(value),
        (None, Err(_)) => {
            let first = prompt("New wallet password")?;
            let second = prompt("Repeat the password")?;
            if *first != *second {
                bail!("the passwords do not match");
            }
            first
        }
    };
    if password.chars().count() < MIN_PASSWORD_LEN {
        bail!("the wallet password must have at least {MIN_PASSWORD_LEN} characters");
    }
    Ok(password)
}

/// A secret given on the command line, or else read from `file`, `env` or a prompt.
pub fn given_or_asked(
    value: Option<&str>,
    file: Option<&Path>,
    env: &str,
    label: &str,
) -> eyre::Result<Zeroizing<String>> {
    match value {
        Some(value) if !value.is_empty() => {
            eprintln!(
                "warning: a {label} given on the command line is visible to other users of this \
                 machine (ps) and stays in your shell history; give the option without a value \
                 to be prompted, or set {env}"
            );
            Ok(Zeroizing::new(value.to_string()))
        }
        _ => password(file, env, label),
    }
}
