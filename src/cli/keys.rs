//! `coffer keys …`: the filesystem store's key store (encryption at rest).

use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::ServerArgs;
use crate::config::{Config, StorageEngine};
use crate::crypt::{KeyWrap, Keyring, MASTER_KEY_FILE, MasterKey};
use crate::domain::BlobKey;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Re-wrap every tenant key under a new master key, without touching objects: the new key
    /// comes from COFFER_NEW_MASTER_KEY, or is generated into the data dir when the current one
    /// lives there. Resumable: run it again after an interruption.
    RotateMaster,
    /// Seal every plaintext object of a data dir written before encryption at rest, in place
    /// and resumably (a server may keep running).
    EncryptExisting,
}

const NEXT_FILE: &str = "master-key.next";

fn check_fs(config: &Config) -> anyhow::Result<()> {
    if matches!(config.storage, StorageEngine::S3(_)) {
        anyhow::bail!("encryption at rest is the filesystem store's; on S3, objects use the bucket's SSE (COFFER_SSE)");
    }
    Ok(())
}

pub async fn keys(args: &KeysArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.server.overrides())?;
    check_fs(&config)?;
    match args.action {
        KeysAction::RotateMaster => rotate_master(&config),
        KeysAction::EncryptExisting => encrypt_existing(&config).await,
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn rotate_master(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let expected = Keyring::expected_master(dir)
        .ok_or_else(|| anyhow::anyhow!("{}: no key store (keys/store.json); nothing to rotate", dir.display()))?;
    let from_env = std::env::var("COFFER_NEW_MASTER_KEY").ok();
    // Generated into the data dir: only when the current key lives there too.
    let generated = from_env.is_none();
    let new = match &from_env {
        Some(text) => MasterKey::parse(text).map_err(|m| anyhow::anyhow!("COFFER_NEW_MASTER_KEY: {m}"))?,
        None if config.master_key.is_none() => match MasterKey::create_file(&dir.join(NEXT_FILE)) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A rotation that was interrupted: finish it with the key it started.
                let text = std::fs::read_to_string(dir.join(NEXT_FILE))?;
                MasterKey::parse(&text).map_err(|m| anyhow::anyhow!("{NEXT_FILE}: {m}"))?
            }
            Err(e) => return Err(e.into()),
        },
        None => anyhow::bail!(
            "COFFER_MASTER_KEY is set: give the new key in COFFER_NEW_MASTER_KEY (64 hex digits, e.g. `openssl rand -hex 32`)"
        ),
    };
    let finish = |report: Option<crate::crypt::RewrapReport>| -> anyhow::Result<()> {
        if generated {
            std::fs::rename(dir.join(NEXT_FILE), dir.join(MASTER_KEY_FILE))?;
            sync_dir(dir)?;
        }
        match report {
            Some(r) => {
                println!("re-wrapped {} tenant keys ({} already) under master key {}", r.rewrapped, r.already, new.id())
            }
            None => println!("the key store is already under master key {}", new.id()),
        }
        if !generated {
            println!("now set COFFER_MASTER_KEY to the new key for every coffer process of this data dir");
        }
        Ok(())
    };
    if expected == new.id() {
        return finish(None);
    }
    let old = crate::startup::master_key(config)?
        .ok_or_else(|| anyhow::anyhow!("no master key: set COFFER_MASTER_KEY to the current key"))?;
    let keyring = Keyring::open(dir, Arc::new(old) as Arc<dyn KeyWrap>)?;
    let report = keyring.rewrap(&new)?;
    finish(Some(report))
}

async fn encrypt_existing(config: &Config) -> anyhow::Result<()> {
    let store = crate::startup::fs_store(config).await?;
    let keyring = store
        .keyring()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("COFFER_ENCRYPTION=off: unset it to seal this data dir"))?;
    // One conversion at a time: then every `.seal-` file found is an earlier run's leftover.
    let lock_path = config.data_dir.join(crate::crypt::KEYS_DIR).join(".encrypt-existing.lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
    if lock.try_lock().is_err() {
        anyhow::bail!("another `coffer keys encrypt-existing` is running on this data dir");
    }
    let (mut sealed, mut already, mut suspect, mut leftovers) = (0u64, 0u64, 0u64, 0u64);
    for bucket in [&config.documents_bucket, &config.media_bucket] {
        let mut after: Option<String> = None;
        loop {
            let page = match crate::blob::BlobStore::list(&store, bucket, after.as_deref(), 1000).await {
                Ok(p) => p,
                Err(crate::blob::BlobError::NoSuchBucket(_)) => break,
                Err(e) => return Err(e.into()),
            };
            for raw in &page.keys {
                if store.remove_seal_leftover(bucket, raw).await? {
                    leftovers += 1;
                    continue;
                }
                let Ok(key) = BlobKey::parse(raw) else { continue };
                match store.seal_existing(bucket, &key).await? {
                    crate::blob::Conversion::Sealed => sealed += 1,
                    crate::blob::Conversion::AlreadySealed => already += 1,
                    crate::blob::Conversion::Suspect(why) => {
                        suspect += 1;
                        println!("left alone: {bucket}/{raw}: starts like a sealed object but {why}");
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    if suspect == 0 {
        keyring.set_all_sealed()?;
    }
    drop(lock);
    println!(
        "sealed {sealed} objects, {already} already sealed, {suspect} left alone, {leftovers} leftovers of an interrupted run removed"
    );
    if suspect > 0 {
        anyhow::bail!("{suspect} objects could not be sealed (see above)");
    }
    Ok(())
}
