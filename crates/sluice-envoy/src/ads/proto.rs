//! The few Envoy v3 / xDS protobuf messages sluice sends and receives, written by hand with
//! `prost`'s derive (no `protoc`, no generated Envoy API: see docs/standalone.md, "ADS").
//!
//! Each message carries only the fields sluice uses, with Envoy's field numbers (checked against
//! the Envoy API protos); unknown fields of what Envoy sends are skipped by prost, and the
//! fields left out of what sluice sends simply keep Envoy's defaults. The real-Envoy tests
//! compare Envoy's `/config_dump` with the JSON translation, so a wrong number fails there.

pub use prost::Message;

pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ROUTE_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const VIRTUAL_HOST_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
/// The gRPC method Envoy calls for delta ADS.
pub const DELTA_ADS_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

// ---- google.protobuf / google.rpc ----

#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct UInt32Value {
    #[prost(uint32, tag = "1")]
    pub value: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct BoolValue {
    #[prost(bool, tag = "1")]
    pub value: bool,
}

/// google.rpc.Status: what a NACK carries (`message` is Envoy's reason).
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

// ---- envoy.service.discovery.v3 ----

#[derive(Clone, PartialEq, Message)]
pub struct Node {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub cluster: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DeltaDiscoveryRequest {
    #[prost(message, optional, tag = "1")]
    pub node: Option<Node>,
    #[prost(string, tag = "2")]
    pub type_url: String,
    #[prost(string, repeated, tag = "3")]
    pub resource_names_subscribe: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub resource_names_unsubscribe: Vec<String>,
    #[prost(map = "string, string", tag = "5")]
    pub initial_resource_versions: std::collections::HashMap<String, String>,
    #[prost(string, tag = "6")]
    pub response_nonce: String,
    #[prost(message, optional, tag = "7")]
    pub error_detail: Option<Status>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(message, optional, tag = "2")]
    pub resource: Option<Any>,
    #[prost(string, tag = "3")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DeltaDiscoveryResponse {
    #[prost(string, tag = "1")]
    pub system_version_info: String,
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<Resource>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub nonce: String,
    #[prost(string, repeated, tag = "6")]
    pub removed_resources: Vec<String>,
}

// ---- envoy.config.cluster.v3 / endpoint.v3 / core.v3 ----

/// Cluster.DiscoveryType
pub const STATIC: i32 = 0;
pub const STRICT_DNS: i32 = 1;
/// Cluster.DnsLookupFamily.V4_PREFERRED
pub const V4_PREFERRED: i32 = 3;

#[derive(Clone, PartialEq, Message)]
pub struct Cluster {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `type` (oneof cluster_discovery_type): always set, STATIC included.
    #[prost(int32, optional, tag = "2")]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "4")]
    pub connect_timeout: Option<Duration>,
    #[prost(int32, tag = "17")]
    pub dns_lookup_family: i32,
    #[prost(message, optional, tag = "33")]
    pub load_assignment: Option<ClusterLoadAssignment>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ClusterLoadAssignment {
    #[prost(string, tag = "1")]
    pub cluster_name: String,
    #[prost(message, repeated, tag = "2")]
    pub endpoints: Vec<LocalityLbEndpoints>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LocalityLbEndpoints {
    #[prost(message, repeated, tag = "2")]
    pub lb_endpoints: Vec<LbEndpoint>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LbEndpoint {
    #[prost(message, optional, tag = "1")]
    pub endpoint: Option<Endpoint>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Endpoint {
    #[prost(message, optional, tag = "1")]
    pub address: Option<Address>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Address {
    #[prost(message, optional, tag = "1")]
    pub socket_address: Option<SocketAddress>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SocketAddress {
    #[prost(string, tag = "2")]
    pub address: String,
    #[prost(uint32, tag = "3")]
    pub port_value: u32,
}

// ---- envoy.config.route.v3 ----

/// core.v3.ApiVersion.V3
pub const API_V3: i32 = 2;

#[derive(Clone, PartialEq, Message)]
pub struct AggregatedConfigSource {}

#[derive(Clone, PartialEq, Message)]
pub struct ConfigSource {
    /// `ads` (oneof config_source_specifier)
    #[prost(message, optional, tag = "3")]
    pub ads: Option<AggregatedConfigSource>,
    #[prost(message, optional, tag = "4")]
    pub initial_fetch_timeout: Option<Duration>,
    #[prost(int32, tag = "6")]
    pub resource_api_version: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Vhds {
    #[prost(message, optional, tag = "1")]
    pub config_source: Option<ConfigSource>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RouteConfiguration {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub virtual_hosts: Vec<VirtualHost>,
    #[prost(message, optional, tag = "7")]
    pub validate_clusters: Option<BoolValue>,
    #[prost(message, optional, tag = "9")]
    pub vhds: Option<Vhds>,
}

#[derive(Clone, PartialEq, Message)]
pub struct VirtualHost {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, repeated, tag = "2")]
    pub domains: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub routes: Vec<Route>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Route {
    #[prost(message, optional, tag = "1")]
    pub r#match: Option<RouteMatch>,
    /// `route` (oneof action)
    #[prost(message, optional, tag = "2")]
    pub route: Option<RouteAction>,
    #[prost(string, tag = "14")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RouteMatch {
    /// `prefix` (oneof path_specifier); sluice always sets it.
    #[prost(string, optional, tag = "1")]
    pub prefix: Option<String>,
    #[prost(message, repeated, tag = "6")]
    pub headers: Vec<HeaderMatcher>,
}

#[derive(Clone, PartialEq, Message)]
pub struct HeaderMatcher {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `string_match` (oneof header_match_specifier)
    #[prost(message, optional, tag = "13")]
    pub string_match: Option<StringMatcher>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringMatcher {
    #[prost(oneof = "MatchPattern", tags = "1, 2, 5")]
    pub match_pattern: Option<MatchPattern>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MatchPattern {
    #[prost(string, tag = "1")]
    Exact(String),
    #[prost(string, tag = "2")]
    Prefix(String),
    #[prost(message, tag = "5")]
    SafeRegex(RegexMatcher),
}

#[derive(Clone, PartialEq, Message)]
pub struct RegexMatcher {
    #[prost(string, tag = "2")]
    pub regex: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RouteAction {
    #[prost(oneof = "ClusterSpecifier", tags = "1, 3")]
    pub cluster_specifier: Option<ClusterSpecifier>,
    #[prost(message, repeated, tag = "30")]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ClusterSpecifier {
    #[prost(string, tag = "1")]
    Cluster(String),
    #[prost(message, tag = "3")]
    WeightedClusters(WeightedCluster),
}

#[derive(Clone, PartialEq, Message)]
pub struct WeightedCluster {
    #[prost(message, repeated, tag = "1")]
    pub clusters: Vec<ClusterWeight>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ClusterWeight {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub weight: Option<UInt32Value>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RequestMirrorPolicy {
    #[prost(string, tag = "1")]
    pub cluster: String,
    #[prost(message, optional, tag = "3")]
    pub runtime_fraction: Option<RuntimeFractionalPercent>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RuntimeFractionalPercent {
    #[prost(message, optional, tag = "1")]
    pub default_value: Option<FractionalPercent>,
}

/// type.v3.FractionalPercent; denominator HUNDRED is 0 (the default).
#[derive(Clone, PartialEq, Message)]
pub struct FractionalPercent {
    #[prost(uint32, tag = "1")]
    pub numerator: u32,
    #[prost(int32, tag = "2")]
    pub denominator: i32,
}
