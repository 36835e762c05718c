use std::collections::HashMap;

use super::*;

fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| map.get(k).cloned(), &Overrides::default())
}

#[test]
fn defaults_match_the_seed() {
    let c = load(&[]).unwrap();
    assert_eq!(c.region, "eu-north-1");
    assert_eq!(c.presign_expiry.as_secs(), 3600);
    assert_eq!(c.documents_bucket.as_str(), "carbon-connect-dev-documents");
    assert_eq!(c.media_bucket.as_str(), "carbon-connect-dev-media");
    assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
    assert!(c.database_url.expose().starts_with("sqlite://"));
}

#[test]
fn environment_names_the_buckets() {
    let c = load(&[("ENVIRONMENT", "prod")]).unwrap();
    assert_eq!(c.documents_bucket.as_str(), "carbon-connect-prod-documents");
    let c = load(&[("ENVIRONMENT", "prod"), ("AWS_S3_MEDIA_BUCKET", "my-media")]).unwrap();
    assert_eq!(c.media_bucket.as_str(), "my-media");
}

#[test]
fn bad_values_name_their_variable() {
    for (var, value) in [
        ("S3_PRESIGNED_URL_EXPIRY", "abc"),
        ("S3_PRESIGNED_URL_EXPIRY", "604801"),
        ("COFFER_ADDR", "nowhere"),
        ("AWS_S3_DOCUMENTS_BUCKET", "Bad_Bucket"),
        ("COFFER_JWT_SECRET", "short"),
        ("COFFER_PUBLIC_URL", "ftp://x"),
        ("COFFER_STORAGE", "tape"),
        ("COFFER_CONFIG", "/nonexistent/coffer.toml"),
    ] {
        let err = load(&[(var, value)]).unwrap_err();
        assert_eq!(err.var, var);
        assert!(err.to_string().starts_with(var));
        assert!(!err.to_string().contains('\n'));
    }
}

#[test]
fn bad_s3_values_name_their_variable() {
    for (var, value) in [
        ("COFFER_S3_PART_SIZE", "4 MiB"),
        ("COFFER_S3_PART_SIZE", "lots"),
        ("COFFER_S3_PARTS_IN_FLIGHT", "0"),
        ("COFFER_S3_SINGLE_PUT_MAX", "6 GiB"),
        ("COFFER_S3_SINGLE_PUT_MAX", "-1"),
        ("COFFER_S3_CHECKSUM", "sometimes"),
    ] {
        let err = load(&[("COFFER_STORAGE", "s3"), (var, value)]).unwrap_err();
        assert_eq!(err.var, var, "{value}");
        assert!(!err.to_string().contains('\n'));
    }
    let c = load(&[("COFFER_STORAGE", "s3"), ("COFFER_S3_SINGLE_PUT_MAX", "0")]).unwrap();
    let StorageEngine::S3(s) = &c.storage else { panic!("s3") };
    assert_eq!(s.single_put_max, 0, "0 turns single streamed PUTs off");
    let c = load(&[("COFFER_STORAGE", "s3")]).unwrap();
    let StorageEngine::S3(s) = &c.storage else { panic!("s3") };
    assert_eq!(s.single_put_max, 64 * 1024 * 1024);
}

#[test]
fn cli_overrides_environment() {
    let map: HashMap<&str, &str> = HashMap::from([("COFFER_ADDR", "127.0.0.1:1")]);
    let o = Overrides { addr: Some("127.0.0.1:2".parse().unwrap()), ..Default::default() };
    let c = Config::from_lookup(|k| map.get(k).map(|v| v.to_string()), &o).unwrap();
    assert_eq!(c.addr.port(), 2);
}

#[test]
fn secrets_are_redacted() {
    let c = load(&[
        ("COFFER_JWT_SECRET", "0123456789abcdef0123456789abcdef-very-secret"),
        ("DATABASE_URL", "sqlite://x.db"),
    ])
    .unwrap();
    let shown = format!("{c:?}\n{}", c.describe());
    assert!(!shown.contains("very-secret"));
    assert!(shown.contains("[redacted]"));
}
