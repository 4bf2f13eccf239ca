//! Setting up S3 Replication the way the console does, from the command line and idempotently: buckets,
//! versioning on both, the IAM role, the replication rule; then the backfill of what replication never
//! copies (objects that existed before the rule).
//!
//! Every command says what it found and what it left (before -> after), and changes nothing that is
//! already as asked. Checks run before any change: bucket names (locally), both buckets reachable and
//! versioned (the same checks `copy` runs, in `preflight`), the destination's region, the rule name.

pub mod policy;

use crate::s3::admin::{
    AccessControlTranslation, DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination,
    OwnerOverride, ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter,
    ReplicationRuleStatus, StorageClass, Tag,
};
use serde_json::json;

use crate::cli::{EndpointArgs, RuleArgs, RuleScope};
use crate::error::Error;
use crate::location::Location;
use crate::preflight::{Side, bucket_error, check_bucket, require_versioning};
use crate::s3::control::{Roles, ServiceError};
use crate::s3::{Admin, Created, S3Admin, S3Api, S3Error, Versioning};
use policy::{RoleFor, Scope};

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Changed,
}

/// The S3 clients of the two sides, and IAM on the source side (where the role lives).
pub struct Clients {
    pub source: Admin,
    pub destination: Admin,
    pub iam: crate::s3::control::AwsRoles,
}

impl Clients {
    pub async fn connect(endpoints: &EndpointArgs) -> Clients {
        Clients {
            source: crate::s3::admin_client(&endpoints.source()).await,
            destination: crate::s3::admin_client(&endpoints.destination()).await,
            iam: crate::s3::control::AwsRoles::connect(&endpoints.source()).await,
        }
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Failed(format!("{what}: {error}"))
}

/// Whether `bucket` exists (and is ours to use).
async fn bucket_exists(client: &Admin, side: Side, bucket: &str) -> Result<bool, Error> {
    client
        .bucket_exists(bucket)
        .await
        .map_err(|e| bucket_error(side, bucket, e))
}

/// `mb`: creates `bucket` in `region` unless it exists.
pub async fn make_bucket(
    client: &Admin,
    side: Side,
    bucket: &str,
    region: Option<&str>,
) -> Result<Change, Error> {
    if bucket_exists(client, side, bucket).await? {
        println!("s3://{bucket}: exists already (nothing changed)");
        return Ok(Change::Unchanged);
    }
    match client.create_bucket(bucket, region).await {
        Ok(Created::Created) => {}
        Ok(Created::AlreadyOurs) => {
            println!("s3://{bucket}: exists already (nothing changed)");
            return Ok(Change::Unchanged);
        }
        Err(S3Error::Other { code, .. }) if code == "BucketAlreadyExists" => {
            return Err(Error::Usage(format!(
                "bucket name {bucket} is taken by another account: bucket names are global; choose another"
            )));
        }
        Err(other) => return Err(bucket_error(side, bucket, other)),
    }
    println!(
        "s3://{bucket}: (none) -> created in {}",
        region.unwrap_or("us-east-1")
    );
    Ok(Change::Changed)
}

fn versioning_name(status: Versioning) -> &'static str {
    match status {
        Versioning::Enabled => "Enabled",
        Versioning::Suspended => "Suspended",
        Versioning::Never => "Off (never enabled)",
    }
}

async fn versioning_status(client: &Admin, side: Side, bucket: &str) -> Result<Versioning, Error> {
    client
        .bucket_versioning(bucket)
        .await
        .map_err(|e| bucket_error(side, bucket, e))
}

/// `versioning ... status`.
pub async fn show_versioning(client: &Admin, side: Side, bucket: &str) -> Result<(), Error> {
    check_bucket(client, side, bucket).await?;
    let status = versioning_status(client, side, bucket).await?;
    println!("s3://{bucket}: versioning {}", versioning_name(status));
    Ok(())
}

/// `versioning ... enable|suspend` and `s3bu`.
pub async fn set_versioning(
    client: &Admin,
    side: Side,
    bucket: &str,
    enable: bool,
) -> Result<Change, Error> {
    check_bucket(client, side, bucket).await?;
    let before = versioning_status(client, side, bucket).await?;
    let wanted = if enable {
        Versioning::Enabled
    } else {
        Versioning::Suspended
    };
    if before == wanted {
        println!(
            "s3://{bucket}: versioning {} already (nothing changed)",
            versioning_name(before)
        );
        return Ok(Change::Unchanged);
    }
    if !enable && before == Versioning::Never {
        println!(
            "s3://{bucket}: versioning was never enabled; nothing to suspend (nothing changed)"
        );
        return Ok(Change::Unchanged);
    }
    client
        .put_versioning(bucket, enable)
        .await
        .map_err(|e| bucket_error(side, bucket, e))?;
    println!(
        "s3://{bucket}: versioning {} -> {}",
        versioning_name(before),
        versioning_name(wanted)
    );
    Ok(Change::Changed)
}

/// The bucket's region as GetBucketLocation tells it (an empty constraint is us-east-1).
pub async fn bucket_region(client: &Admin, side: Side, bucket: &str) -> Result<String, Error> {
    client
        .bucket_region(bucket)
        .await
        .map_err(|e| bucket_error(side, bucket, e))
}

/// The source's replication configuration, if it has one.
pub async fn get_replication(
    client: &Admin,
    bucket: &str,
) -> Result<Option<ReplicationConfiguration>, Error> {
    client
        .replication(bucket)
        .await
        .map_err(|e| bucket_error(Side::Source, bucket, e))
}

/// One line about a rule, for before/after and `replication get`.
pub fn describe_rule(rule: &ReplicationRule) -> String {
    let scope = match rule.filter() {
        Some(filter) => match (filter.prefix(), filter.tag()) {
            (_, Some(tag)) => format!("objects tagged {}={}", tag.key(), tag.value()),
            (Some(prefix), _) if !prefix.is_empty() => format!("keys under {prefix:?}"),
            _ => "all objects".to_string(),
        },
        #[expect(
            deprecated,
            reason = "V1 rules, written by older tools, scope by a rule-level prefix"
        )]
        None => match rule.prefix() {
            Some(prefix) if !prefix.is_empty() => format!("keys under {prefix:?}"),
            _ => "all objects".to_string(),
        },
    };
    let destination = rule.destination();
    let mut text = format!(
        "{} ({}, priority {}, {scope}) -> {}",
        rule.id().unwrap_or("(no id)"),
        rule.status().as_str(),
        rule.priority().unwrap_or(0),
        destination.map_or("?", |d| d.bucket()),
    );
    if let Some(class) = destination.and_then(|d| d.storage_class()) {
        text.push_str(&format!(", storage class {}", class.as_str()));
    }
    if let Some(account) = destination.and_then(|d| d.account()) {
        text.push_str(&format!(", account {account}"));
    }
    let markers = rule
        .delete_marker_replication()
        .and_then(|d| d.status())
        .is_some_and(|s| *s == DeleteMarkerReplicationStatus::Enabled);
    text.push_str(if markers {
        ", delete markers replicated"
    } else {
        ", delete markers not replicated"
    });
    text
}

/// Local checks of a rule's options (before any request).
fn check_rule_options(source: &Location, destination: &Location, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::Usage(format!(
            "rule name {name:?} has {} characters: a replication rule ID has 1 to 255",
            name.len()
        )));
    }
    if source.bucket == destination.bucket {
        return Err(Error::Usage(format!(
            "the destination bucket is the source bucket ({}): replication needs another bucket",
            source.bucket
        )));
    }
    Ok(())
}

/// The checks a replication rule needs on the servers: both buckets there and versioned, and the
/// destination in the region the user named. Nothing is changed.
pub async fn replication_preflight(
    clients: &Clients,
    source: &Location,
    destination: &Location,
    rule: &RuleArgs,
) -> Result<(), Error> {
    check_bucket(&clients.source, Side::Source, &source.bucket).await?;
    check_bucket(&clients.destination, Side::Destination, &destination.bucket).await?;
    let fix = |bucket: &str| format!("enable it with `s3-backfill s3bu s3://{bucket}`");
    require_versioning(
        &clients.source,
        Side::Source,
        &source.bucket,
        &fix(&source.bucket),
    )
    .await?;
    require_versioning(
        &clients.destination,
        Side::Destination,
        &destination.bucket,
        &fix(&destination.bucket),
    )
    .await?;
    if let Some(wanted) = &rule.destination_region {
        let actual =
            bucket_region(&clients.destination, Side::Destination, &destination.bucket).await?;
        if &actual != wanted {
            return Err(Error::Usage(format!(
                "--destination-region {wanted}, but bucket {} is in {actual}: pass --destination-region {actual}",
                destination.bucket
            )));
        }
    }
    Ok(())
}

fn role_missing(command: &str) -> Error {
    Error::Usage(format!(
        "{command} needs an IAM role for S3 to replicate with: pass --role-arn ARN (an existing role trusted by \
         s3.amazonaws.com), or --create-role NAME to create one with least-privilege permissions \
         (see `s3-backfill role policy`)"
    ))
}

/// Builds the rule the options describe.
fn build_rule(
    name: &str,
    destination: &Location,
    rule: &RuleArgs,
    priority: i32,
) -> Result<ReplicationRule, Error> {
    let filter = match &rule.rule_scope {
        RuleScope::All => ReplicationRuleFilter::builder().prefix("").build(),
        RuleScope::Prefix(prefix) => ReplicationRuleFilter::builder().prefix(prefix).build(),
        RuleScope::Tag(key, value) => ReplicationRuleFilter::builder()
            .tag(
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|e| failed("tag", e))?,
            )
            .build(),
    };
    let mut target = Destination::builder().bucket(format!("arn:aws:s3:::{}", destination.bucket));
    if let Some(class) = &rule.storage_class {
        target = target.storage_class(StorageClass::from(class.as_str()));
    }
    if let Some(account) = &rule.dest_account {
        target = target.account(account).access_control_translation(
            AccessControlTranslation::builder()
                .owner(OwnerOverride::Destination)
                .build()
                .map_err(|e| failed("access control translation", e))?,
        );
    }
    ReplicationRule::builder()
        .id(name)
        .priority(priority)
        .filter(filter)
        .status(ReplicationRuleStatus::Enabled)
        .destination(target.build().map_err(|e| failed("destination", e))?)
        .delete_marker_replication(
            DeleteMarkerReplication::builder()
                .status(if rule.delete_marker_replication {
                    DeleteMarkerReplicationStatus::Enabled
                } else {
                    DeleteMarkerReplicationStatus::Disabled
                })
                .build(),
        )
        .build()
        .map_err(|e| failed("replication rule", e))
}

/// Resolves the role option to an ARN, creating the role when asked.
async fn role_arn(
    clients: &Clients,
    source: &Location,
    destination: &Location,
    rule: &RuleArgs,
    command: &str,
) -> Result<(String, Change), Error> {
    match (&rule.role_arn, &rule.create_role) {
        (Some(arn), _) => Ok((arn.clone(), Change::Unchanged)),
        (None, Some(name)) => {
            let scope = Scope {
                source_bucket: source.bucket.clone(),
                destination_bucket: destination.bucket.clone(),
                ..Scope::default()
            };
            ensure_role(&clients.iam, name, RoleFor::Replication, &scope).await
        }
        (None, None) => Err(role_missing(command)),
    }
}

/// The inline policy's name on roles this tool creates.
const POLICY_NAME: &str = "s3-backfill-replication";

/// Creates role `name` (trust and permissions for `role_for`), or reuses it when it exists with the
/// right trust (its inline permissions are brought up to date).
pub async fn ensure_role(
    iam: &impl Roles,
    name: &str,
    role_for: RoleFor,
    scope: &Scope,
) -> Result<(String, Change), Error> {
    let permissions = policy::permissions_policy(role_for, scope).to_string();
    let iam_error = |what: &str, e: ServiceError| {
        Error::Failed(format!("IAM {what} for role {name} failed: {e}"))
    };
    let existing = iam
        .get_role(name)
        .await
        .map_err(|e| iam_error("GetRole", e))?;
    let (arn, change) = match existing {
        Some(role) => {
            if !role.trust_policy.contains(role_for.service()) {
                return Err(Error::Usage(format!(
                    "role {name} exists but does not trust {}: pass another --create-role name, or --role-arn \
                     with a role that does",
                    role_for.service()
                )));
            }
            println!(
                "role {name}: exists, trusted by {} (reused)",
                role_for.service()
            );
            (role.arn, Change::Unchanged)
        }
        None => {
            let arn = iam
                .create_role(
                    name,
                    &policy::trust_policy(role_for).to_string(),
                    "Created by s3-backfill",
                )
                .await
                .map_err(|e| iam_error("CreateRole", e))?;
            println!(
                "role {name}: (none) -> created {arn}, trusted by {}",
                role_for.service()
            );
            (arn, Change::Changed)
        }
    };
    let current = iam
        .role_policy(name, POLICY_NAME)
        .await
        .map_err(|e| iam_error("GetRolePolicy", e))?;
    let same = current
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        == serde_json::from_str::<serde_json::Value>(&permissions).ok();
    if same {
        return Ok((arn, change));
    }
    iam.put_role_policy(name, POLICY_NAME, &permissions)
        .await
        .map_err(|e| iam_error("PutRolePolicy", e))?;
    println!(
        "role {name}: permissions policy {POLICY_NAME} {}",
        if current.is_some() {
            "updated"
        } else {
            "attached"
        }
    );
    Ok((arn, Change::Changed))
}

/// `replication put` and `s3ptr`: adds or updates rule `name`, keeping the bucket's other rules.
pub async fn put_rule(
    clients: &Clients,
    source: &Location,
    destination: &Location,
    name: &str,
    rule: &RuleArgs,
    command: &str,
) -> Result<Change, Error> {
    check_rule_options(source, destination, name)?;
    if rule.role_arn.is_none() && rule.create_role.is_none() {
        return Err(role_missing(command));
    }
    replication_preflight(clients, source, destination, rule).await?;
    let (role, role_change) = role_arn(clients, source, destination, rule, command).await?;
    let before = get_replication(&clients.source, &source.bucket).await?;
    let mut rules: Vec<ReplicationRule> = before
        .as_ref()
        .map(|c| c.rules().to_vec())
        .unwrap_or_default();
    let old = rules.iter().position(|r| r.id() == Some(name));
    let priority = rule.priority.unwrap_or_else(|| match old {
        Some(i) => rules[i].priority().unwrap_or(0),
        None => rules
            .iter()
            .filter_map(|r| r.priority())
            .max()
            .map_or(0, |p| p + 1),
    });
    let new = build_rule(name, destination, rule, priority)?;
    let previous_role = before.as_ref().map(|c| c.role().to_string());
    if let Some(i) = old {
        // Compared as described: servers add fields of their own to a rule they give back.
        if describe_rule(&rules[i]) == describe_rule(&new)
            && previous_role.as_deref() == Some(role.as_str())
        {
            println!(
                "replication rule {}: already as asked (nothing changed)",
                describe_rule(&new)
            );
            return Ok(role_change);
        }
        println!("replication rule before: {}", describe_rule(&rules[i]));
        rules[i] = new.clone();
    } else {
        println!(
            "replication rule before: (no rule {name} on s3://{})",
            source.bucket
        );
        rules.push(new.clone());
    }
    let configuration = ReplicationConfiguration::builder()
        .role(&role)
        .set_rules(Some(rules))
        .build()
        .map_err(|e| failed("replication configuration", e))?;
    clients
        .source
        .put_replication(&source.bucket, &configuration)
        .await
        .map_err(|e| bucket_error(Side::Source, &source.bucket, e))?;
    println!("replication rule after:  {}", describe_rule(&new));
    if previous_role.as_deref().is_some_and(|r| r != role) {
        println!(
            "replication role: {} -> {role} (one role serves every rule of a bucket)",
            previous_role.unwrap_or_default()
        );
    } else {
        println!("replication role: {role}");
    }
    if command != "setup" {
        // `setup` says what it does about the existing objects itself.
        println!(
            "replication copies only objects written from now on; for the existing ones run:\n  s3-backfill copy s3://{} s3://{}",
            source.bucket, destination.bucket
        );
    }
    Ok(Change::Changed)
}

/// `replication get`.
pub async fn show_replication(
    clients: &Clients,
    source: &Location,
    as_json: bool,
) -> Result<(), Error> {
    check_bucket(&clients.source, Side::Source, &source.bucket).await?;
    let configuration = get_replication(&clients.source, &source.bucket).await?;
    if as_json {
        let value = configuration.as_ref().map(|c| {
            json!({
                "Role": c.role(),
                "Rules": c.rules().iter().map(|r| json!({
                    "ID": r.id(),
                    "Priority": r.priority(),
                    "Status": r.status().as_str(),
                    "Filter": r.filter().map(|f| json!({
                        "Prefix": f.prefix(),
                        "Tag": f.tag().map(|t| json!({"Key": t.key(), "Value": t.value()})),
                    })),
                    "Destination": r.destination().map(|d| json!({
                        "Bucket": d.bucket(),
                        "Account": d.account(),
                        "StorageClass": d.storage_class().map(|s| s.as_str()),
                    })),
                    "DeleteMarkerReplication": r.delete_marker_replication()
                        .and_then(|d| d.status()).map(|s| s.as_str()),
                })).collect::<Vec<_>>(),
            })
        });
        println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        return Ok(());
    }
    match configuration {
        None => println!("s3://{}: no replication configuration", source.bucket),
        Some(configuration) => {
            println!(
                "s3://{}: replication role {}",
                source.bucket,
                configuration.role()
            );
            for rule in configuration.rules() {
                println!("  {}", describe_rule(rule));
            }
        }
    }
    Ok(())
}

/// `replication delete`: one rule, or the whole configuration.
pub async fn delete_replication(
    clients: &Clients,
    source: &Location,
    name: Option<&str>,
) -> Result<Change, Error> {
    check_bucket(&clients.source, Side::Source, &source.bucket).await?;
    let Some(configuration) = get_replication(&clients.source, &source.bucket).await? else {
        println!(
            "s3://{}: no replication configuration (nothing changed)",
            source.bucket
        );
        return Ok(Change::Unchanged);
    };
    let client = &clients.source;
    let error = |e| bucket_error(Side::Source, &source.bucket, e);
    let remaining: Vec<ReplicationRule> = match name {
        None => Vec::new(),
        Some(name) => {
            if !configuration.rules().iter().any(|r| r.id() == Some(name)) {
                println!("s3://{}: no rule {name} (nothing changed)", source.bucket);
                return Ok(Change::Unchanged);
            }
            configuration
                .rules()
                .iter()
                .filter(|r| r.id() != Some(name))
                .cloned()
                .collect()
        }
    };
    for rule in configuration
        .rules()
        .iter()
        .filter(|r| !remaining.contains(r))
    {
        println!("deleted replication rule: {}", describe_rule(rule));
    }
    if remaining.is_empty() {
        client
            .delete_replication(&source.bucket)
            .await
            .map_err(error)?;
        println!("s3://{}: replication configuration removed", source.bucket);
    } else {
        let kept = ReplicationConfiguration::builder()
            .role(configuration.role())
            .set_rules(Some(remaining))
            .build()
            .map_err(|e| failed("replication configuration", e))?;
        client
            .put_replication(&source.bucket, &kept)
            .await
            .map_err(error)?;
    }
    Ok(Change::Changed)
}

/// `setup`: buckets, versioning on both, then the rule and its role. Returns whether anything changed.
pub async fn setup(
    clients: &Clients,
    source: &Location,
    destination: &Location,
    name: &str,
    rule: &RuleArgs,
    endpoints: &EndpointArgs,
) -> Result<Change, Error> {
    let changes = prepare(clients, source, destination, name, rule, endpoints).await?;
    put_rule_step(clients, source, destination, name, rule, changes, 3).await
}

/// The steps of `setup` before the rule: checks, buckets (1), versioning on both (2).
pub async fn prepare(
    clients: &Clients,
    source: &Location,
    destination: &Location,
    name: &str,
    rule: &RuleArgs,
    endpoints: &EndpointArgs,
) -> Result<Vec<Change>, Error> {
    check_rule_options(source, destination, name)?;
    if rule.role_arn.is_none() && rule.create_role.is_none() {
        return Err(role_missing("setup"));
    }
    let source_region = endpoints.source().region;
    let destination_region = rule
        .destination_region
        .clone()
        .or(endpoints.destination().region);
    let mut changes = Vec::new();
    println!("1. buckets");
    changes.push(
        make_bucket(
            &clients.source,
            Side::Source,
            &source.bucket,
            source_region.as_deref(),
        )
        .await?,
    );
    changes.push(
        make_bucket(
            &clients.destination,
            Side::Destination,
            &destination.bucket,
            destination_region.as_deref(),
        )
        .await?,
    );
    println!("2. versioning");
    changes.push(set_versioning(&clients.source, Side::Source, &source.bucket, true).await?);
    changes.push(
        set_versioning(
            &clients.destination,
            Side::Destination,
            &destination.bucket,
            true,
        )
        .await?,
    );
    Ok(changes)
}

/// The rule and its role, as step `step` of `setup`; `changes` are the earlier steps'.
pub async fn put_rule_step(
    clients: &Clients,
    source: &Location,
    destination: &Location,
    name: &str,
    rule: &RuleArgs,
    mut changes: Vec<Change>,
    step: usize,
) -> Result<Change, Error> {
    println!("{step}. replication rule and role");
    changes.push(put_rule(clients, source, destination, name, rule, "setup").await?);
    let change = if changes.contains(&Change::Changed) {
        Change::Changed
    } else {
        println!("everything was already set up: nothing changed");
        Change::Unchanged
    };
    Ok(change)
}

/// `role policy`: prints the trust and permissions policies.
pub fn print_policies(role_for: RoleFor, scope: &Scope) {
    println!("trust policy ({}):", role_for.service());
    println!(
        "{}",
        serde_json::to_string_pretty(&policy::trust_policy(role_for)).expect("json")
    );
    println!("permissions policy:");
    println!(
        "{}",
        serde_json::to_string_pretty(&policy::permissions_policy(role_for, scope)).expect("json")
    );
}
