//! The operator audit trail: one JSON line per destructive operation, appended (and synced) to
//! `audit.log` in the data dir (0600) and logged at target `coffer::audit`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::config::Config;
use crate::domain::TenantId;

/// Who runs this command: the invoking login (through sudo too), and the host.
fn actor() -> (String, String) {
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    (user, host)
}

/// Records `action` on `tenant`, with `detail`.
pub fn record(config: &Config, action: &str, tenant: &TenantId, detail: serde_json::Value) -> anyhow::Result<()> {
    let (user, host) = actor();
    let line = serde_json::json!({
        "at": chrono::Utc::now().to_rfc3339(),
        "action": action,
        "tenant": tenant.as_str(),
        "actor": user,
        "host": host,
        "pid": std::process::id(),
        "detail": detail,
    });
    tracing::info!(target: "coffer::audit", action, tenant = %tenant, actor = %user, host = %host, detail = %line["detail"], "audit");
    crate::util::create_private_dir_all(&config.data_dir)?;
    let path = config.data_dir.join("audit.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_all()?;
    Ok(())
}
