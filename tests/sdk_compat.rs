//! The official Dapr SDKs against the real binary: runs
//! `scripts/sdk/run.sh` (Python `dapr` + extensions and JS `@dapr/dapr` at
//! pinned versions, installed into the scratch folder on first run) and
//! fails when any scenario fails. Needs python3 (venv), node/npm and the
//! package registries on the first run.

mod support;

use std::process::Command;

#[test]
fn official_sdks_work_unchanged() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{root}/scripts/sdk/run.sh"))
        .env("SIDEBUS_BIN", env!("CARGO_BIN_EXE_sidebus"))
        .current_dir(root);
    // The sidecars run.sh starts (and the SDKs, which send DAPR_API_TOKEN
    // when set) must not see the developer's flags or tokens.
    support::process::clear_sidecar_env(&mut cmd);
    let out = cmd.output().expect("run scripts/sdk/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("sdk: "))
        .unwrap_or_default();
    assert!(
        out.status.success() && summary.ends_with(" 0 failed"),
        "SDK suite failed ({summary}):\n{stdout}\n{stderr}"
    );
    assert!(
        !summary.starts_with("sdk: 0 passed"),
        "no scenario ran:\n{stdout}"
    );
}
