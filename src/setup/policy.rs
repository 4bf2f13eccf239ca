//! The IAM documents a replication rule or a Batch Operations job needs: the role's trust policy and a
//! least-privilege permissions policy, as JSON.

use serde_json::{Value, json};

pub use crate::cli::RoleFor;

impl RoleFor {
    pub fn service(self) -> &'static str {
        match self {
            RoleFor::Replication => "s3.amazonaws.com",
            RoleFor::Batch => "batchoperations.s3.amazonaws.com",
        }
    }
}

/// What the permissions cover.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub source_bucket: String,
    pub destination_bucket: String,
    /// KMS key that encrypts source objects (decrypt).
    pub source_kms_key: Option<String>,
    /// KMS key the destination copies are encrypted with (encrypt).
    pub destination_kms_key: Option<String>,
    /// Bucket of Batch Operations manifests and completion reports (default: the source bucket).
    pub report_bucket: Option<String>,
}

pub fn trust_policy(role_for: RoleFor) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": role_for.service() },
            "Action": "sts:AssumeRole"
        }]
    })
}

fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

fn objects_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}/*")
}

pub fn permissions_policy(role_for: RoleFor, scope: &Scope) -> Value {
    let source = &scope.source_bucket;
    let destination = &scope.destination_bucket;
    let mut statements = vec![
        json!({
            "Sid": "ReadSourceConfiguration",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": [bucket_arn(source)]
        }),
        json!({
            "Sid": "ReadSourceVersions",
            "Effect": "Allow",
            "Action": [
                "s3:GetObjectVersionForReplication",
                "s3:GetObjectVersionAcl",
                "s3:GetObjectVersionTagging"
            ],
            "Resource": [objects_arn(source)]
        }),
        json!({
            "Sid": "WriteDestinationReplicas",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            "Resource": [objects_arn(destination)]
        }),
    ];
    if role_for == RoleFor::Batch {
        let reports = scope.report_bucket.as_deref().unwrap_or(source);
        statements.push(json!({
            "Sid": "InitiateReplication",
            "Effect": "Allow",
            "Action": ["s3:InitiateReplication", "s3:PutInventoryConfiguration"],
            "Resource": [bucket_arn(source), objects_arn(source)]
        }));
        statements.push(json!({
            "Sid": "ManifestsAndReports",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketLocation"],
            "Resource": [bucket_arn(reports), objects_arn(reports)]
        }));
    }
    if let Some(key) = &scope.source_kms_key {
        statements.push(json!({
            "Sid": "DecryptSource",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [key],
            "Condition": { "StringLike": { "kms:EncryptionContext:aws:s3:arn": [objects_arn(source)] } }
        }));
    }
    if let Some(key) = &scope.destination_kms_key {
        statements.push(json!({
            "Sid": "EncryptDestination",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": [key],
            "Condition": {
                "StringLike": { "kms:EncryptionContext:aws:s3:arn": [objects_arn(destination)] }
            }
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(policy: &Value) -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn replication_trusts_s3_and_batch_trusts_batch_operations() {
        assert_eq!(
            trust_policy(RoleFor::Replication)["Statement"][0]["Principal"]["Service"],
            "s3.amazonaws.com"
        );
        assert_eq!(
            trust_policy(RoleFor::Batch)["Statement"][0]["Principal"]["Service"],
            "batchoperations.s3.amazonaws.com"
        );
    }

    #[test]
    fn replication_permissions_are_scoped_to_the_two_buckets() {
        let scope = Scope {
            source_bucket: "src".into(),
            destination_bucket: "dst".into(),
            ..Scope::default()
        };
        let policy = permissions_policy(RoleFor::Replication, &scope);
        let all = actions(&policy);
        for needed in [
            "s3:GetReplicationConfiguration",
            "s3:ListBucket",
            "s3:GetObjectVersionForReplication",
            "s3:GetObjectVersionAcl",
            "s3:GetObjectVersionTagging",
            "s3:ReplicateObject",
            "s3:ReplicateDelete",
            "s3:ReplicateTags",
        ] {
            assert!(all.iter().any(|a| a == needed), "{needed}");
        }
        assert!(!all.iter().any(|a| a.contains('*') || a.starts_with("kms:")));
        assert!(!all.contains(&"s3:InitiateReplication".to_string()));
        let resources = policy.to_string();
        assert!(
            resources.contains("arn:aws:s3:::src/*") && resources.contains("arn:aws:s3:::dst/*")
        );
        assert!(!resources.contains("arn:aws:s3:::*"));
    }

    #[test]
    fn batch_and_kms_add_their_statements() {
        let scope = Scope {
            source_bucket: "src".into(),
            destination_bucket: "dst".into(),
            source_kms_key: Some("arn:aws:kms:us-east-1:111122223333:key/a".into()),
            destination_kms_key: Some("arn:aws:kms:us-east-1:111122223333:key/b".into()),
            report_bucket: Some("reports".into()),
        };
        let policy = permissions_policy(RoleFor::Batch, &scope);
        let all = actions(&policy);
        for needed in [
            "s3:InitiateReplication",
            "s3:PutInventoryConfiguration",
            "kms:Decrypt",
            "kms:Encrypt",
        ] {
            assert!(all.iter().any(|a| a == needed), "{needed}");
        }
        assert!(policy.to_string().contains("arn:aws:s3:::reports/*"));
    }
}
