//! The Lambda functions as Lambda runs them, offline: `cargo lambda watch` emulates the Lambda
//! runtime API and starts each function binary on its first invocation, and `cargo lambda
//! invoke` sends it an event. Both come from the `cargo-lambda` package in the virtualenv.

use crate::{venv_dir, workspace_dir, Account};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `cargo lambda watch`, serving both functions for one emulated account. Stopped
/// (with the function processes it started) when dropped.
pub struct LambdaWatch {
    child: Child,
    port: u16,
    /// The emulator's and the functions' output, kept outside the crates: a file changing
    /// inside one would make `cargo lambda watch` rebuild.
    pub log: PathBuf,
}

/// What `cargo lambda invoke` returned: the function's JSON response, or its error.
#[derive(Debug)]
pub struct Invocation {
    pub output: Output,
}

impl Invocation {
    pub fn succeeded(&self) -> bool {
        self.output.status.success()
    }

    pub fn response(&self) -> Result<Value> {
        if !self.succeeded() {
            bail!("invocation failed: {}", self.stderr());
        }
        serde_json::from_slice(&self.output.stdout).with_context(|| {
            format!(
                "response is not JSON: {}",
                String::from_utf8_lossy(&self.output.stdout)
            )
        })
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The environment `cargo lambda` runs with: the machine's basics and the AWS settings (the
/// emulator's endpoint), nothing else. The test process inherits `CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_NAME` and the like from `cargo test`; build scripts (ring's) declare those as
/// rerun triggers, so passing them on would make the nested `cargo run` rebuild the SDK, and
/// the next `cargo build` rebuild it back.
fn clean_environment(command: &mut Command) {
    const KEPT: [&str; 10] = [
        "HOME",
        "USER",
        "LANG",
        "TMPDIR",
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "VENV",
        "RUST_LOG",
    ];
    command.env_clear();
    for (key, value) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if KEPT.contains(&name.as_ref()) || name.starts_with("AWS_") {
            command.env(&key, value);
        }
    }
    command.env("PATH", path_with_venv()).env("NO_COLOR", "1");
}

fn path_with_venv() -> String {
    let venv_bin = venv_dir().join("bin");
    format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

impl LambdaWatch {
    /// Starts the emulator with `account`'s credentials and the given `TRAILWATCH_` settings,
    /// as a deployment would set them on the functions.
    pub fn start(account: &Account, settings: &[(&str, &str)]) -> Result<Self> {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("trailwatch-lambda-watch-{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(venv_dir().join("bin/cargo-lambda"));
        command
            .args(["lambda", "watch", "--ignore-changes", "--invoke-port"])
            .arg(port.to_string())
            .current_dir(workspace_dir())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        clean_environment(&mut command);
        for (key, value) in account.env() {
            command.env(key, value);
        }
        for (key, value) in settings {
            command.env(key, value);
        }
        // Its own process group, so that stopping it also stops `cargo run` and the functions.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .context("cargo lambda watch (run `make venv`)")?;
        let mut watch = LambdaWatch { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = watch.child.try_wait()? {
                bail!("cargo lambda watch exited with {status}: {}", watch.logs());
            }
            if Instant::now() > deadline {
                bail!(
                    "cargo lambda watch did not listen within 60 s: {}",
                    watch.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(watch)
    }

    /// Sends `event` to `function` and waits for its answer.
    pub fn invoke(&self, function: &str, event: &Value) -> Result<Invocation> {
        let file = std::env::temp_dir().join(format!(
            "trailwatch-event-{}-{}.json",
            self.port,
            rand::random::<u32>()
        ));
        std::fs::write(&file, serde_json::to_vec(event)?)?;
        let mut command = Command::new(venv_dir().join("bin/cargo-lambda"));
        command
            .args(["lambda", "invoke", function, "--invoke-port"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(&file)
            .current_dir(workspace_dir());
        clean_environment(&mut command);
        let output = command.output().context("cargo lambda invoke")?;
        std::fs::remove_file(&file)?;
        Ok(Invocation { output })
    }

    /// Everything the emulator and the functions printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}
