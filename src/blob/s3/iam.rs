//! `coffer iam-policy`: least-privilege IAM policy documents for the configured buckets — one
//! for the running service (the seed's ECS task role), one for `coffer provision`.

use serde_json::{Value, json};

use crate::config::{Config, Sse, StorageEngine};

fn arns(config: &Config, suffix: &str) -> Vec<String> {
    [&config.documents_bucket, &config.media_bucket].iter().map(|b| format!("arn:aws:s3:::{b}{suffix}")).collect()
}

/// The service's policy: object get/put/delete/restore and multipart clean-up on the two
/// buckets' objects, listing on the two buckets, and KMS use when SSE-KMS is configured.
pub fn service_policy(config: &Config) -> Value {
    let mut statements = vec![
        json!({
            "Sid": "CofferObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:RestoreObject",
                       "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            "Resource": arns(config, "/*"),
        }),
        json!({
            "Sid": "CofferList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": arns(config, ""),
        }),
    ];
    if let StorageEngine::S3(s) = &config.storage
        && let Sse::Kms(key) = &s.sse
    {
        statements.push(json!({
            "Sid": "CofferKms",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": key.clone().unwrap_or_else(|| "*".into()),
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The provisioning policy: create the buckets and read/write exactly the settings
/// `coffer provision` manages.
pub fn provision_policy(config: &Config) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CofferProvision",
            "Effect": "Allow",
            "Action": ["s3:CreateBucket", "s3:ListBucket",
                       "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
                       "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
                       "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
                       "s3:GetBucketVersioning", "s3:PutBucketVersioning"],
            "Resource": arns(config, ""),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    #[test]
    fn policies_name_only_the_configured_buckets() {
        let config = Config::from_lookup(
            |k| match k {
                "AWS_S3_DOCUMENTS_BUCKET" => Some("docs-b".into()),
                "AWS_S3_MEDIA_BUCKET" => Some("media-b".into()),
                _ => None,
            },
            &Overrides::default(),
        )
        .unwrap();
        let service = service_policy(&config);
        let text = service.to_string();
        assert!(text.contains("arn:aws:s3:::docs-b/*") && text.contains("arn:aws:s3:::media-b"));
        assert!(!text.contains("s3:*") && !text.contains("\"Resource\":\"*\""));
        assert!(!text.contains("PutBucket"), "the service cannot reconfigure buckets");
        let provision = provision_policy(&config).to_string();
        assert!(provision.contains("s3:PutLifecycleConfiguration") && !provision.contains("s3:GetObject"));
    }
}
