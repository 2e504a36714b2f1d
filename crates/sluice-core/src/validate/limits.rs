//! How much a Rollout file may hold. Every limit is far above what a real Rollout needs and
//! low enough that no single file can make loading slow or large for everyone else (one file
//! of nested `[` used to take a minute to reject; a 10 MB one used 2.5 GB and printed 770 MB of
//! problems). Each is documented with its value and message in docs/rollout-spec.md#limits.

/// Largest file `load_file` reads and `load_str` accepts, in bytes (1 MiB).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// YAML documents (`---`) in one file, empty ones included.
pub const MAX_DOCUMENTS: usize = 100;
/// Nesting levels (open `[` / `{` plus block indentation levels), checked before parsing.
pub const MAX_NESTING: usize = 64;
/// Entries in any one YAML list or map, checked while the parsed YAML is converted (before the
/// schema walk, so a list of a million wrong items is one problem, not a million).
pub const MAX_COLLECTION_ITEMS: usize = 1000;
/// Problems reported per file; the rest are summed up in one last line.
pub const MAX_PROBLEMS: usize = 100;

/// `metrics[i].query` (PromQL template), in bytes.
pub const MAX_QUERY_LEN: usize = 4096;
/// A header match's `regex`, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
/// A header match's `exact` / `prefix` value and a Prometheus header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;
/// A header name (matches, Prometheus headers), in bytes.
pub const MAX_HEADER_NAME_LEN: usize = 256;
/// `provider.prometheus.address` and `webhooks[i].url`, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Names of metrics and webhooks.
pub const MAX_ITEM_NAME_LEN: usize = 63;
/// `revision` and `upstreams.stableRevision`.
pub const MAX_REVISION_LEN: usize = 128;
/// Any other string in `spec`: durations, cron windows, time zones, hosts, gateways, file
/// paths, environment variable names, user names, webhook metadata values.
pub const MAX_STRING_LEN: usize = 4096;

/// `strategy.canary.steps` (weights are 1–100 and strictly increase: 100 is all there can be).
pub const MAX_STEPS: usize = 100;
/// `analysis.metrics`.
pub const MAX_METRICS: usize = 20;
/// `match` of a dark launch or A/B test.
pub const MAX_MATCHES: usize = 16;
/// Headers in one match.
pub const MAX_MATCH_HEADERS: usize = 16;
/// `webhooks`.
pub const MAX_WEBHOOKS: usize = 20;
/// `notifications`.
pub const MAX_NOTIFICATIONS: usize = 10;
/// `schedule.windows`.
pub const MAX_WINDOWS: usize = 16;
/// `service.hosts`, `service.gateways`, `provider.prometheus.headers`,
/// `webhooks[i].metadata`: entries in each.
pub const MAX_ENTRIES: usize = 32;
/// `routing.gatewayAPI.parentRefs` (the Gateway API CRDs' own limit).
pub const MAX_PARENT_REFS: usize = 32;
/// `routing.gatewayAPI.hostnames` (the Gateway API CRDs' own limit).
pub const MAX_HOSTNAMES: usize = 16;
