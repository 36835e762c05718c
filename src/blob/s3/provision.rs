//! `coffer provision`: creates or updates both buckets idempotently — public access block (all
//! four flags), default encryption (SSE-S3 AES256 with a bucket key, or SSE-KMS), and the
//! seed's lifecycle (documents: STANDARD → INTELLIGENT_TIERING → GLACIER; both buckets:
//! abort incomplete multipart uploads after 7 days), optionally versioning. Each setting is read
//! first and written only when it differs, so a second run changes nothing.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, ExpirationStatus, LifecycleRule, LifecycleRuleFilter, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Transition, TransitionStorageClass, VersioningConfiguration,
};

use crate::blob::{BlobStore, FsBlobStore, S3BlobStore};
use crate::config::{BucketKind, Config, S3Settings, Sse};

/// The outcome of one setting of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Changed,
    /// Dry run: would change.
    Planned,
    /// The server does not implement the API.
    Unsupported(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub bucket: String,
    pub setting: &'static str,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub struct Report {
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
}

impl Report {
    /// A report of one failure before any bucket was reached.
    pub fn failed(message: String) -> Self {
        let outcome = Outcome::Failed(message);
        Self { steps: vec![Step { bucket: "-".into(), setting: "open store", outcome }], notes: Vec::new() }
    }

    /// 0: everything in place; 3: partial (a server lacked an API); 1: something failed.
    pub fn exit_code(&self) -> u8 {
        if self.steps.iter().any(|s| matches!(s.outcome, Outcome::Failed(_))) {
            1
        } else if self.steps.iter().any(|s| matches!(s.outcome, Outcome::Unsupported(_))) {
            3
        } else {
            0
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for note in &self.notes {
            out.push_str(&format!("{note}\n"));
        }
        for s in &self.steps {
            let what = match &s.outcome {
                Outcome::Unchanged => "unchanged".to_owned(),
                Outcome::Changed => "changed".to_owned(),
                Outcome::Planned => "would change".to_owned(),
                Outcome::Unsupported(m) => format!("not supported by this server ({m}); skipped"),
                Outcome::Failed(m) => format!("FAILED: {m}"),
            };
            out.push_str(&format!("{:<40} {:<22} {what}\n", s.bucket, s.setting));
        }
        out
    }
}

/// Creates `bucket` in `region` (no location constraint in us-east-1, as S3 requires).
pub async fn create_bucket(client: &Client, bucket: &str, region: &str) -> Result<(), String> {
    let mut req = client.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        let location =
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build();
        req = req.create_bucket_configuration(location);
    }
    req.send().await.map(|_| ()).map_err(|e| DisplayErrorContext(&e).to_string())
}

/// Provisioning on the filesystem store: each bucket's directory (nothing else applies).
pub async fn provision_fs(store: &FsBlobStore, config: &Config, dry_run: bool) -> Report {
    let mut report = Report::default();
    for kind in [BucketKind::Documents, BucketKind::Media] {
        let bucket = config.bucket(kind);
        let outcome = if dry_run {
            if store.check(bucket).await.is_ok() { Outcome::Unchanged } else { Outcome::Planned }
        } else {
            match store.ensure_bucket(bucket).await {
                Ok(true) => Outcome::Changed,
                Ok(false) => Outcome::Unchanged,
                Err(e) => Outcome::Failed(e.to_string()),
            }
        };
        report.steps.push(Step { bucket: bucket.to_string(), setting: "directory", outcome });
    }
    report.notes.push("filesystem store: lifecycle and public access block do not apply".into());
    report.notes.push(match store.keyring() {
        Some(_) => "encryption at rest: objects sealed with AES-256-GCM under per-tenant keys (keys/)".into(),
        None => "encryption at rest: off (COFFER_ENCRYPTION=off); objects are stored in plaintext".into(),
    });
    report
}

/// Provisioning on S3: both buckets with public access block, encryption and lifecycle.
pub async fn provision_s3(store: &S3BlobStore, config: &Config, dry_run: bool, versioning: bool) -> Report {
    let mut report = Report::default();
    for kind in [BucketKind::Documents, BucketKind::Media] {
        let bucket = config.bucket(kind).to_string();
        let p = Provisioner { client: store.client(), settings: store.settings(), bucket: &bucket, dry_run };
        p.run(kind, versioning, &mut report).await;
    }
    report
}

/// How many answers in a row, and within how long, show that a new bucket is served everywhere.
const VISIBLE_IN_A_ROW: u32 = 6;
const VISIBLE_WITHIN: Duration = Duration::from_secs(20);

/// Reads of a bucket's rules, and the pause between them, before they count as not kept.
const RULES_READS: u32 = 15;
const RULES_PAUSE: Duration = Duration::from_millis(200);

/// A lifecycle rule as compared: id, transitions (days, storage class), abort-incomplete days.
type Rule = (String, Vec<(i32, String)>, i32);

struct Provisioner<'a> {
    client: &'a Client,
    settings: &'a S3Settings,
    bucket: &'a str,
    dry_run: bool,
}

/// Whether an error means the server lacks the API (rather than refusing this request).
fn unsupported(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(code, Some("NotImplemented" | "NotSupported" | "MethodNotAllowed")) || matches!(status, Some(501 | 405))
}

/// Runs an S3 call on a bucket that exists (`head_bucket` saw it, or provisioning just created
/// it) and maps its error to an [`Outcome`]. NoSuchBucket then means a node of a cluster that
/// has not heard of the bucket yet (Garage: a fresh cluster's CI run met it on the lifecycle
/// put), so the call is repeated for up to [`VISIBLE_WITHIN`]: `$e` is evaluated again each time.
macro_rules! call {
    ($e:expr) => {{
        let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
        let mut pause = Duration::from_millis(100);
        let result = loop {
            match $e.await {
                Err(err) if err.code() == Some("NoSuchBucket") && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => break other,
            }
        };
        result.map_err(|err| {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_owned);
            if unsupported(code.as_deref(), status) {
                Outcome::Unsupported(code.unwrap_or_else(|| format!("HTTP {}", status.unwrap_or(0))))
            } else {
                Outcome::Failed(DisplayErrorContext(&err).to_string())
            }
        })
    }};
}

impl Provisioner<'_> {
    async fn run(&self, kind: BucketKind, versioning: bool, report: &mut Report) {
        let step = |setting, outcome| Step { bucket: self.bucket.to_owned(), setting, outcome };
        let exists = self.client.head_bucket().bucket(self.bucket).send().await.is_ok();
        let created = if exists {
            Outcome::Unchanged
        } else if self.dry_run {
            Outcome::Planned
        } else {
            match create_bucket(self.client, self.bucket, &self.settings.region).await {
                Ok(()) => {
                    self.until_visible().await;
                    Outcome::Changed
                }
                Err(e) => Outcome::Failed(e),
            }
        };
        let failed = matches!(created, Outcome::Failed(_));
        report.steps.push(step("bucket", created));
        if failed || (!exists && self.dry_run) {
            // Nothing to read back: every setting would be applied.
            if !failed {
                for setting in ["public access block", "default encryption", "lifecycle"] {
                    report.steps.push(step(setting, Outcome::Planned));
                }
            }
            return;
        }
        report.steps.push(step("public access block", self.public_access_block().await.unwrap_or_else(|o| o)));
        report.steps.push(step("default encryption", self.encryption().await.unwrap_or_else(|o| o)));
        report.steps.push(step("lifecycle", self.lifecycle(kind).await.unwrap_or_else(|o| o)));
        if versioning {
            report.steps.push(step("versioning", self.versioning().await.unwrap_or_else(|o| o)));
        }
    }

    /// Waits until the bucket just created answers as existing [`VISIBLE_IN_A_ROW`] times in a
    /// row (at most [`VISIBLE_WITHIN`]): on a distributed store (Garage behind a balancer; AWS
    /// too, briefly) a node other than the one that created it may still answer NoSuchBucket,
    /// and the settings below would fail or read back nothing. Past the limit the settings are
    /// tried anyway and report what they meet.
    async fn until_visible(&self) {
        let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
        let (mut in_a_row, mut pause) = (0, Duration::from_millis(50));
        while in_a_row < VISIBLE_IN_A_ROW && tokio::time::Instant::now() < deadline {
            if self.client.head_bucket().bucket(self.bucket).send().await.is_ok() {
                in_a_row += 1;
                continue;
            }
            in_a_row = 0;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    fn apply(&self) -> Outcome {
        if self.dry_run { Outcome::Planned } else { Outcome::Changed }
    }

    async fn public_access_block(&self) -> Result<Outcome, Outcome> {
        let current = self.client.get_public_access_block().bucket(self.bucket).send().await;
        let all_set = current.ok().and_then(|o| o.public_access_block_configuration().cloned()).is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        });
        if all_set {
            return Ok(Outcome::Unchanged);
        }
        if !self.dry_run {
            let config = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            call!(
                self.client
                    .put_public_access_block()
                    .bucket(self.bucket)
                    .public_access_block_configuration(config.clone())
                    .send()
            )?;
        }
        Ok(self.apply())
    }

    fn wanted_sse(&self) -> (ServerSideEncryption, Option<String>) {
        match &self.settings.sse {
            Sse::Kms(key) => (ServerSideEncryption::AwsKms, key.clone()),
            Sse::Aes256 | Sse::None => (ServerSideEncryption::Aes256, None),
        }
    }

    async fn encryption(&self) -> Result<Outcome, Outcome> {
        let (algorithm, kms_key) = self.wanted_sse();
        let current = self.client.get_bucket_encryption().bucket(self.bucket).send().await;
        let matches = current.ok().and_then(|o| o.server_side_encryption_configuration().cloned()).is_some_and(|c| {
            c.rules().iter().any(|r| {
                let d = r.apply_server_side_encryption_by_default();
                d.map(|d| d.sse_algorithm()) == Some(&algorithm)
                    && d.and_then(|d| d.kms_master_key_id()).map(str::to_owned) == kms_key
                    && r.bucket_key_enabled() == Some(true)
            })
        });
        if matches {
            return Ok(Outcome::Unchanged);
        }
        if !self.dry_run {
            let default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(algorithm)
                .set_kms_master_key_id(kms_key)
                .build()
                .map_err(|e| Outcome::Failed(e.to_string()))?;
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(default)
                .bucket_key_enabled(true)
                .build();
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| Outcome::Failed(e.to_string()))?;
            call!(
                self.client
                    .put_bucket_encryption()
                    .bucket(self.bucket)
                    .server_side_encryption_configuration(config.clone())
                    .send()
            )?;
        }
        Ok(self.apply())
    }

    /// The rules coffer wants.
    fn wanted_rules(&self, kind: BucketKind) -> Vec<Rule> {
        match kind {
            BucketKind::Documents => vec![(
                "coffer-documents-archive".into(),
                vec![
                    (self.settings.intelligent_tiering_after_days, "INTELLIGENT_TIERING".into()),
                    (self.settings.glacier_after_days, "GLACIER".into()),
                ],
                7,
            )],
            BucketKind::Media => vec![("coffer-media-abort-incomplete-uploads".into(), vec![], 7)],
        }
    }

    async fn lifecycle(&self, kind: BucketKind) -> Result<Outcome, Outcome> {
        let wanted = self.wanted_rules(kind);
        if self.current_rules().await == wanted {
            return Ok(Outcome::Unchanged);
        }
        if self.dry_run {
            return Ok(Outcome::Planned);
        }
        let refused = match self.put_rules(&wanted).await {
            Ok(()) => None,
            Err(Outcome::Failed(why)) if wanted.iter().any(|(_, t, _)| !t.is_empty()) => Some(why),
            Err(other) => return Err(other),
        };
        // Some servers (Garage) take the rules but drop what they cannot do, or refuse storage
        // classes outright: read back, and keep at least the abort rule, saying what is missing.
        if refused.is_none() && self.rules_become(&wanted).await {
            return Ok(Outcome::Changed);
        }
        let without: Vec<Rule> = wanted.iter().map(|(id, _, abort)| (id.clone(), Vec::new(), *abort)).collect();
        if refused.is_some() {
            self.put_rules(&without).await?;
        }
        if self.rules_become(&without).await {
            let why = refused.map(|w| format!(": {w}")).unwrap_or_default();
            return Err(Outcome::Unsupported(format!(
                "storage-class transitions{why}; kept the abort of incomplete multipart uploads"
            )));
        }
        Err(Outcome::Failed("the server did not keep the lifecycle rules it accepted".into()))
    }

    /// Whether the bucket's rules read back as `want` within a few seconds: a cluster (Garage)
    /// may answer a read from a node the new rules (or the new bucket) have not reached yet.
    async fn rules_become(&self, want: &[Rule]) -> bool {
        for _ in 0..RULES_READS {
            if self.current_rules().await == want {
                return true;
            }
            tokio::time::sleep(RULES_PAUSE).await;
        }
        false
    }

    /// The enabled rules on the bucket, as (id, transitions, abort days).
    async fn current_rules(&self) -> Vec<Rule> {
        let current = self.client.get_bucket_lifecycle_configuration().bucket(self.bucket).send().await;
        current
            .map(|o| {
                o.rules()
                    .iter()
                    .filter(|r| r.status() == &ExpirationStatus::Enabled)
                    .map(|r| {
                        let transitions = r
                            .transitions()
                            .iter()
                            .map(|t| {
                                (
                                    t.days().unwrap_or(0),
                                    t.storage_class().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                                )
                            })
                            .collect();
                        let abort =
                            r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()).unwrap_or(0);
                        (r.id().unwrap_or_default().to_owned(), transitions, abort)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn put_rules(&self, rules: &[Rule]) -> Result<(), Outcome> {
        let mut config = BucketLifecycleConfiguration::builder();
        for (id, transitions, abort) in rules {
            let mut rule = LifecycleRule::builder()
                .id(id)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .status(ExpirationStatus::Enabled)
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(*abort).build(),
                );
            for (days, class) in transitions {
                rule = rule.transitions(
                    Transition::builder()
                        .days(*days)
                        .storage_class(TransitionStorageClass::from(class.as_str()))
                        .build(),
                );
            }
            config = config.rules(rule.build().map_err(|e| Outcome::Failed(e.to_string()))?);
        }
        let config = config.build().map_err(|e| Outcome::Failed(e.to_string()))?;
        call!(
            self.client
                .put_bucket_lifecycle_configuration()
                .bucket(self.bucket)
                .lifecycle_configuration(config.clone())
                .send()
        )?;
        Ok(())
    }

    async fn versioning(&self) -> Result<Outcome, Outcome> {
        // An unreadable answer (some servers send a malformed one for never-versioned buckets)
        // counts as "not enabled": the PUT below settles it.
        let current = self.client.get_bucket_versioning().bucket(self.bucket).send().await;
        if current.ok().is_some_and(|c| c.status() == Some(&BucketVersioningStatus::Enabled)) {
            return Ok(Outcome::Unchanged);
        }
        if !self.dry_run {
            let config = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
            call!(
                self.client.put_bucket_versioning().bucket(self.bucket).versioning_configuration(config.clone()).send()
            )?;
        }
        Ok(self.apply())
    }
}
