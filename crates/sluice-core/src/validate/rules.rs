//! Rules the schema cannot express: "exactly one of", ordering, ranges, and values that must
//! parse (durations, cron windows, regexes, URLs, query templates). Each rule reports the field
//! path it is about; all rules run, so a user sees every problem at once.

use std::collections::BTreeMap;

use crate::spec::{
    Analysis, CanaryStrategy, GatewayApiRouting, HttpMatch, Metric, Rollout, RolloutSpec, RouteRef,
    Schedule, StringMatch,
};

use super::FieldPath;
use super::limits::*;

/// Collected problems: (path, message).
#[derive(Default)]
pub struct Findings(pub Vec<(String, String)>);

impl Findings {
    fn add(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.push((path.to_string(), message.into()));
    }

    /// Reports `s` when it is longer than `max` bytes; `true` when it was (callers then skip
    /// parsing it).
    fn too_long(&mut self, s: &str, max: usize, path: &FieldPath) -> bool {
        let long = s.len() > max;
        if long {
            self.add(
                path,
                format!("is {} bytes long; at most {max} are allowed", s.len()),
            );
        }
        long
    }

    /// Reports a list or map with more than `max` entries. Callers check the first `max` only.
    fn too_many(&mut self, n: usize, max: usize, what: &str, path: &FieldPath) {
        if n > max {
            self.add(path, format!("has {n} {what}; at most {max} are allowed"));
        }
    }
}

/// Longest rollout name: sluice creates `<name>-primary` / `<name>-canary` Services, whose
/// names must be DNS-1035 labels of at most 63 characters.
pub const MAX_NAME_LEN: usize = 63 - "-primary".len();

pub fn check_rollout(r: &Rollout, f: &mut Findings) {
    check_metadata(r, f);
    check_spec(&r.spec, f);
}

/// The rules of `metadata` alone: names sluice derives object names from.
pub fn check_metadata(r: &Rollout, f: &mut Findings) {
    let meta = FieldPath::root("metadata");
    match r.metadata.name.as_deref() {
        None | Some("") => f.add(&meta.field("name"), "required field is missing"),
        Some(name) => {
            if let Err(e) = dns_label(name, MAX_NAME_LEN) {
                f.add(&meta.field("name"), e);
            }
        }
    }
    if let Some(ns) = r.metadata.namespace.as_deref()
        && let Err(e) = dns_label(ns, 63)
    {
        f.add(&meta.field("namespace"), e);
    }
}

/// The rules of a spec alone (what [`crate::rollout_plan::RolloutPlan::try_from`] runs).
pub fn check_spec(s: &RolloutSpec, f: &mut Findings) {
    let spec = FieldPath::root("spec");
    match (&s.target_ref, &s.upstreams) {
        (Some(_), Some(_)) => f.add(
            &spec,
            "both `targetRef` and `upstreams` are set; set exactly one (targetRef on Kubernetes, \
             upstreams standalone)",
        ),
        (None, None) => f.add(
            &spec,
            "no target: set `targetRef` (Kubernetes) or `upstreams` (standalone)",
        ),
        _ => {}
    }
    if let Some(t) = &s.target_ref {
        let p = spec.field("targetRef");
        if t.api_version != "apps/v1" {
            f.add(
                &p.field("apiVersion"),
                format!("`{}` is not supported; use apps/v1", t.api_version),
            );
        }
        if t.kind != "Deployment" {
            f.add(
                &p.field("kind"),
                format!("`{}` is not supported; use Deployment", t.kind),
            );
        }
        if let Err(e) = dns_label(&t.name, 253) {
            f.add(&p.field("name"), e);
        }
    }
    if let Some(u) = &s.upstreams {
        let p = spec.field("upstreams");
        for (field, addr) in [("stable", &u.stable), ("canary", &u.canary)] {
            if f.too_long(addr, MAX_STRING_LEN, &p.field(field)) {
                continue;
            }
            if let Err(e) = host_port(addr) {
                f.add(&p.field(field), e);
            }
        }
        if let Some(label) = &u.stable_revision
            && !f.too_long(label, MAX_REVISION_LEN, &p.field("stableRevision"))
        {
            check_stable_revision(label, u.stable == u.canary, s, &p, f);
        }
    }
    if let Some(rev) = &s.revision {
        if f.too_long(rev, MAX_REVISION_LEN, &spec.field("revision")) {
        } else if rev.trim().is_empty() {
            f.add(&spec.field("revision"), "must not be empty");
        } else if s.target_ref.is_some() {
            // On Kubernetes the revision is the Deployment's pod template; a label here would
            // be silently ignored.
            f.add(
                &spec.field("revision"),
                "applies to `upstreams` only; with `targetRef` the Deployment's template is the revision",
            );
        }
    }

    let svc = spec.field("service");
    if s.service.port == 0 {
        f.add(&svc.field("port"), "port must be between 1 and 65535");
    }
    for (field, list) in [
        ("hosts", &s.service.hosts),
        ("gateways", &s.service.gateways),
    ] {
        f.too_many(list.len(), MAX_ENTRIES, "names", &svc.field(field));
        for (i, h) in list.iter().enumerate().take(MAX_ENTRIES) {
            if f.too_long(h, MAX_STRING_LEN, &svc.field(field).index(i)) {
            } else if h.trim().is_empty() || h.chars().any(char::is_whitespace) {
                f.add(
                    &svc.field(field).index(i),
                    format!("{h:?} is not a valid name"),
                );
            }
        }
    }

    check_routing(s, &spec.field("routing"), f);
    check_strategy(s, &spec.field("strategy"), f);
    check_analysis(&s.analysis, &spec.field("analysis"), f);
    check_duration(
        &s.progress_deadline.duration,
        &spec.field("progressDeadline").field("duration"),
        f,
    );
    if let Some(sched) = &s.schedule {
        check_schedule(sched, &spec.field("schedule"), f);
    }
    check_webhooks(s, &spec.field("webhooks"), f);
    let np = spec.field("notifications");
    f.too_many(
        s.notifications.len(),
        MAX_NOTIFICATIONS,
        "notifications",
        &np,
    );
    for (i, n) in s.notifications.iter().enumerate().take(MAX_NOTIFICATIONS) {
        if n.url_from_env.is_some() == n.url_from_file.is_some() {
            f.add(
                &np.index(i),
                "set exactly one of `urlFromEnv` or `urlFromFile`",
            );
        }
        for (field, v) in [
            ("urlFromEnv", &n.url_from_env),
            ("urlFromFile", &n.url_from_file),
        ] {
            if let Some(v) = v {
                f.too_long(v, MAX_STRING_LEN, &np.index(i).field(field));
            }
        }
    }
}

/// Gateway API routing: the rules the Gateway API CRDs put on `parentRefs` and `hostnames`
/// (patterns, lengths, distinct parents), checked here so a bad value is refused with its
/// field path before any route is written.
fn check_routing(s: &RolloutSpec, p: &FieldPath, f: &mut Findings) {
    if let Some(i) = &s.routing.istio {
        let ip = p.field("istio");
        if s.routing.gateway_api.is_some() {
            f.add(p, "set one router: `istio` or `gatewayAPI`, not both");
        } else if s.upstreams.is_some() {
            f.add(
                &ip,
                "applies to Kubernetes (`targetRef`) only; standalone rollouts route with Envoy",
            );
        }
        if let Some(r) = &i.virtual_service_ref {
            let rp = ip.field("virtualServiceRef");
            check_route_ref(r, &rp, RuleNames::Istio, f);
            for (field, list) in [
                ("hosts", &s.service.hosts),
                ("gateways", &s.service.gateways),
            ] {
                if !list.is_empty() {
                    f.add(
                        &FieldPath::root("spec").field("service").field(field),
                        format!(
                            "configures the VirtualService sluice generates; with \
                             routing.istio.virtualServiceRef the {field} are your \
                             VirtualService's own"
                        ),
                    );
                }
            }
        }
    }
    let Some(g) = &s.routing.gateway_api else {
        return;
    };
    let gp = p.field("gatewayAPI");
    if s.upstreams.is_some() {
        f.add(
            &gp,
            "applies to Kubernetes (`targetRef`) only; standalone rollouts route with Envoy",
        );
    }
    for (field, list) in [
        ("hosts", &s.service.hosts),
        ("gateways", &s.service.gateways),
    ] {
        if !list.is_empty() {
            f.add(
                &FieldPath::root("spec").field("service").field(field),
                format!(
                    "configures the Istio VirtualService, which is not written with \
                     routing.gatewayAPI; use routing.gatewayAPI.{}",
                    if field == "hosts" {
                        "hostnames"
                    } else {
                        "parentRefs"
                    }
                ),
            );
        }
    }
    if let Some(r) = &g.route_ref {
        check_route_ref(r, &gp.field("routeRef"), RuleNames::GatewayApi, f);
        for (field, empty) in [
            ("parentRefs", g.parent_refs.is_empty()),
            ("hostnames", g.hostnames.is_empty()),
        ] {
            if !empty {
                f.add(
                    &gp.field(field),
                    format!(
                        "belongs to the route sluice generates; with routeRef the {field} are \
                         your route's own"
                    ),
                );
            }
        }
    }
    check_parent_refs(g, &gp.field("parentRefs"), f);
    let hp = gp.field("hostnames");
    f.too_many(g.hostnames.len(), MAX_HOSTNAMES, "hostnames", &hp);
    for (i, h) in g.hostnames.iter().enumerate().take(MAX_HOSTNAMES) {
        if let Err(e) = route_hostname(h) {
            f.add(&hp.index(i), e);
        }
    }
}

/// Whose rule names a [`RouteRef`] names: Istio's `http[].name` is free text, Gateway API's
/// `rules[].name` a DNS label-like SectionName.
#[derive(Clone, Copy)]
enum RuleNames {
    Istio,
    GatewayApi,
}

/// The route's name is an object name (a DNS subdomain); the rule's name must be one the
/// route's CRD accepts, and must not start with `sluice-` (the names of the rules sluice
/// inserts before it).
fn check_route_ref(r: &RouteRef, p: &FieldPath, names: RuleNames, f: &mut Findings) {
    if let Err(e) = dns_subdomain(&r.name) {
        f.add(&p.field("name"), e);
    }
    let rp = p.field("ruleName");
    let rule_ok = match names {
        RuleNames::Istio => {
            !r.rule_name.is_empty()
                && r.rule_name.len() <= MAX_STRING_LEN
                && !r
                    .rule_name
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
        }
        RuleNames::GatewayApi => dns_subdomain(&r.rule_name).is_ok(),
    };
    if !rule_ok {
        f.add(
            &rp,
            match names {
                RuleNames::Istio => format!(
                    "{:?} is not a route name (1 to {MAX_STRING_LEN} characters, no spaces)",
                    r.rule_name
                ),
                RuleNames::GatewayApi => format!(
                    "{:?} is not a rule name (lowercase letters, digits, `-` and `.`, at most \
                     253 characters)",
                    r.rule_name
                ),
            },
        );
    } else if r.rule_name.starts_with(OWNED_RULE_PREFIX) {
        f.add(
            &rp,
            format!(
                "names starting with `{OWNED_RULE_PREFIX}` are the rules sluice inserts; name \
                 your rule otherwise"
            ),
        );
    }
}

/// Prefix of the rules sluice inserts into a route the user owns.
pub const OWNED_RULE_PREFIX: &str = "sluice-";

fn check_parent_refs(g: &GatewayApiRouting, p: &FieldPath, f: &mut Findings) {
    f.too_many(g.parent_refs.len(), MAX_PARENT_REFS, "parentRefs", p);
    for (i, r) in g.parent_refs.iter().enumerate().take(MAX_PARENT_REFS) {
        let rp = p.index(i);
        if r.name.is_empty() || r.name.len() > 253 {
            f.add(&rp.field("name"), "must be 1 to 253 characters long");
        }
        if let Some(group) = &r.group
            && !group.is_empty()
            && let Err(e) = dns_subdomain(group)
        {
            f.add(&rp.field("group"), e);
        }
        if let Some(kind) = &r.kind {
            let ok = kind.len() <= 63
                && kind.starts_with(|c: char| c.is_ascii_alphabetic())
                && !kind.ends_with('-')
                && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                f.add(
                    &rp.field("kind"),
                    format!("{kind:?} is not a kind (e.g. Gateway, Service)"),
                );
            }
        }
        if let Some(ns) = &r.namespace
            && let Err(e) = dns_label(ns, 63)
        {
            f.add(&rp.field("namespace"), e);
        }
        if let Some(section) = &r.section_name
            && let Err(e) = dns_subdomain(section)
        {
            f.add(&rp.field("sectionName"), e);
        }
        if r.port == Some(0) {
            f.add(&rp.field("port"), "port must be between 1 and 65535");
        }
        // The CRD's rule: parents must be distinct (the same object twice needs distinct
        // sectionName / port).
        if g.parent_refs[..i].contains(r) {
            f.add(&rp, "repeats an earlier parentRef");
        }
    }
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
fn dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| dns_label(l, 63).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} must be lowercase letters, digits, `-` and `.` (a DNS subdomain)"
        ))
    }
}

/// A Gateway API hostname: a DNS subdomain, optionally `*.`-prefixed, never an IP address.
fn route_hostname(s: &str) -> Result<(), String> {
    let bare = s.strip_prefix("*.").unwrap_or(s);
    if s.parse::<std::net::IpAddr>().is_ok()
        || bare
            .split('.')
            .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "{s:?} is an IP address; Gateway API routes need host names"
        ));
    }
    dns_subdomain(bare)
        .map_err(|_| format!("{s:?} is not a host name (e.g. reviews.example.com, *.example.com)"))
}

/// `upstreams.stableRevision` must not make the two sides' revisions say the opposite of
/// their addresses: that would start a rollout of nothing, or never roll the canary out.
fn check_stable_revision(
    label: &str,
    same_address: bool,
    s: &RolloutSpec,
    p: &FieldPath,
    f: &mut Findings,
) {
    let p = p.field("stableRevision");
    if label.trim().is_empty() {
        f.add(&p, "must not be empty");
        return;
    }
    match (same_address, s.revision.as_deref()) {
        (true, None) => f.add(
            &p,
            "stable and canary are the same address, so stable runs the canary's revision, \
             which is its address here: set `revision` instead",
        ),
        (true, Some(rev)) if rev != label => f.add(
            &p,
            format!(
                "stable and canary are the same address, so stable runs `revision` ({rev}); \
                 remove stableRevision or make it {rev}"
            ),
        ),
        (false, Some(rev)) if rev == label => f.add(
            &p,
            format!(
                "equals `revision` ({rev}) but stable and canary are different addresses: \
                 the canary would never be rolled out"
            ),
        ),
        _ => {}
    }
}

fn check_strategy(s: &RolloutSpec, p: &FieldPath, f: &mut Findings) {
    let st = &s.strategy;
    let set: Vec<&str> = [
        ("canary", st.canary.is_some()),
        ("darkLaunch", st.dark_launch.is_some()),
        ("abTest", st.ab_test.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    match set.len() {
        0 => f.add(
            p,
            "no strategy: set exactly one of `canary`, `darkLaunch`, `abTest`",
        ),
        1 => {}
        _ => f.add(
            p,
            format!(
                "{} are set; set exactly one of `canary`, `darkLaunch`, `abTest`",
                set.join(" and ")
            ),
        ),
    }
    if let Some(c) = &st.canary {
        check_canary(c, &p.field("canary"), f);
    }
    if let Some(d) = &st.dark_launch {
        let dp = p.field("darkLaunch");
        check_matches(&d.matches, &dp.field("match"), f);
        if let Some(m) = d.mirror_percent
            && m > 100
        {
            f.add(
                &dp.field("mirrorPercent"),
                format!("{m} is outside 0..100 (percent)"),
            );
        }
        check_iterations(d.iterations, &dp.field("iterations"), f);
        if let Some(c) = &d.then_canary {
            check_canary(c, &dp.field("thenCanary"), f);
        }
    }
    if let Some(ab) = &st.ab_test {
        let ap = p.field("abTest");
        check_matches(&ab.matches, &ap.field("match"), f);
        check_iterations(ab.iterations, &ap.field("iterations"), f);
    }
}

fn check_iterations(n: u32, p: &FieldPath, f: &mut Findings) {
    if n == 0 {
        f.add(
            p,
            "must be at least 1 (passing analysis checks before the stage ends)",
        );
    }
}

fn check_canary(c: &CanaryStrategy, p: &FieldPath, f: &mut Findings) {
    if let Some(a) = &c.session_affinity {
        let ap = p.field("sessionAffinity");
        // RFC 6265 `token`: what may stand before `=` in a Set-Cookie header.
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
        };
        if !token(&a.cookie_name) {
            f.add(
                &ap.field("cookieName"),
                format!(
                    "{:?} is not a cookie name (1 to 64 letters, digits or !#$%&'*+-.^_`|~)",
                    a.cookie_name
                ),
            );
        }
        let mp = ap.field("maxAge");
        if !f.too_long(&a.max_age, MAX_STRING_LEN, &mp) {
            match crate::duration::parse(&a.max_age) {
                Err(e) => f.add(&mp, e),
                Ok(d) if d.as_secs() == 0 => f.add(&mp, "must be at least 1s"),
                Ok(d) if d.as_secs() > 400 * 24 * 3600 => {
                    f.add(&mp, "at most 400 days (browsers cap cookies there)")
                }
                Ok(_) => {}
            }
        }
    }
    match (&c.steps, c.step_weight) {
        (Some(_), Some(_)) => f.add(
            p,
            "set either `steps` or `stepWeight` (with `maxWeight`), not both",
        ),
        (None, None) if c.max_weight.is_some() => {
            f.add(&p.field("maxWeight"), "`maxWeight` needs `stepWeight`");
        }
        (None, None) => {
            f.add(
                p,
                "set `steps` (e.g. [10, 25, 50]) or `stepWeight` and `maxWeight`",
            );
        }
        (Some(steps), None) => {
            let sp = p.field("steps");
            if steps.is_empty() {
                f.add(&sp, "needs at least one weight");
            }
            f.too_many(steps.len(), MAX_STEPS, "steps", &sp);
            if c.max_weight.is_some() {
                f.add(
                    &p.field("maxWeight"),
                    "`maxWeight` applies to `stepWeight`; with `steps` the last step is the maximum",
                );
            }
            let mut prev: Option<u32> = None;
            for (i, &w) in steps.iter().enumerate().take(MAX_STEPS) {
                if !(1..=100).contains(&w) {
                    f.add(
                        &sp.index(i),
                        format!("weight {w} is outside 1..100 (percent of traffic to the canary)"),
                    );
                } else if let Some(prev) = prev
                    && w <= prev
                {
                    f.add(
                        &sp.index(i),
                        format!(
                            "weight {w} must be greater than the previous step ({prev}); \
                             steps must strictly increase"
                        ),
                    );
                }
                prev = Some(prev.map_or(w, |p| p.max(w)));
            }
        }
        (None, Some(step)) => {
            if !(1..=100).contains(&step) {
                f.add(
                    &p.field("stepWeight"),
                    format!("weight {step} is outside 1..100"),
                );
            }
            match c.max_weight {
                Some(max) if !(1..=100).contains(&max) => {
                    f.add(
                        &p.field("maxWeight"),
                        format!("weight {max} is outside 1..100"),
                    );
                }
                Some(max) if max < step => f.add(
                    &p.field("maxWeight"),
                    format!("maxWeight {max} is below stepWeight {step}: no step would run"),
                ),
                _ => {}
            }
        }
    }
}

fn check_matches(matches: &[HttpMatch], p: &FieldPath, f: &mut Findings) {
    if matches.is_empty() {
        f.add(
            p,
            "needs at least one match (e.g. headers: {x-user: {exact: beta}})",
        );
    }
    f.too_many(matches.len(), MAX_MATCHES, "matches", p);
    for (i, m) in matches.iter().enumerate().take(MAX_MATCHES) {
        let mp = p.index(i).field("headers");
        f.too_many(m.headers.len(), MAX_MATCH_HEADERS, "headers", &mp);
        if m.headers.is_empty() {
            // An empty match selects every request: the whole service would go to the canary.
            f.add(
                &mp,
                "needs at least one header; an empty match selects every request",
            );
        }
        for (name, sm) in m.headers.iter().take(MAX_MATCH_HEADERS) {
            if name.len() > MAX_HEADER_NAME_LEN {
                f.add(
                    &mp,
                    format!(
                        "a header name is {} bytes long; at most {MAX_HEADER_NAME_LEN} are allowed",
                        name.len()
                    ),
                );
                continue;
            }
            let hp = mp.field(name);
            if !valid_header_name(name) {
                f.add(
                    &hp,
                    format!(
                        "header name {name:?} must be lowercase letters, digits and `-` \
                         (Istio requires lowercase header names)"
                    ),
                );
            }
            check_string_match(sm, &hp, f);
        }
    }
}

fn check_string_match(sm: &StringMatch, p: &FieldPath, f: &mut Findings) {
    let set: Vec<(&str, &String)> = [
        ("exact", sm.exact.as_ref()),
        ("prefix", sm.prefix.as_ref()),
        ("regex", sm.regex.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if set.len() != 1 {
        let found = if set.is_empty() {
            "none is set".to_string()
        } else {
            format!(
                "found {}",
                set.iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        f.add(
            p,
            format!("set exactly one of `exact`, `prefix`, `regex`; {found}"),
        );
    }
    let mut long = false;
    for (k, v) in set {
        let max = if k == "regex" {
            MAX_REGEX_LEN
        } else {
            MAX_HEADER_VALUE_LEN
        };
        if v.is_empty() {
            f.add(&p.field(k), "must not be empty");
        } else {
            long |= f.too_long(v, max, &p.field(k));
            check_header_value(v, &p.field(k), f);
        }
    }
    if let Some(re) = &sm.regex
        && !re.is_empty()
        && !long
        && let Err(e) = regex::Regex::new(re)
    {
        f.add(
            &p.field("regex"),
            format!("invalid regex: {}", regex_reason(&e)),
        );
    } else if let Some(re) = &sm.regex
        && !long
        && let Some(why) = super::re2::envoy_refusal(re)
    {
        // Rust accepts it, Envoy would not: it would refuse every plan of this rollout.
        f.add(&p.field("regex"), why);
    }
}

fn check_analysis(a: &Analysis, p: &FieldPath, f: &mut Findings) {
    check_duration(&a.interval, &p.field("interval"), f);
    if let Some(g) = &a.gather_for {
        check_duration(g, &p.field("gatherFor"), f);
    }
    if a.failure_limit == 0 {
        f.add(&p.field("failureLimit"), "must be at least 1");
    }
    if a.inconclusive_limit == 0 {
        f.add(&p.field("inconclusiveLimit"), "must be at least 1");
    }
    if let Some(prov) = &a.provider {
        let pp = p.field("provider").field("prometheus");
        let prom = &prov.prometheus;
        if f.too_long(&prom.address, MAX_URL_LEN, &pp.field("address")) {
        } else if let Err(e) = http_url(&prom.address) {
            f.add(&pp.field("address"), e);
        }
        if let Some(t) = &prom.timeout {
            check_duration(t, &pp.field("timeout"), f);
        }
        if prom.bearer_token_file.is_some() && prom.basic_auth.is_some() {
            f.add(&pp, "set at most one of `bearerTokenFile` and `basicAuth`");
        }
        if let Some(path) = &prom.bearer_token_file {
            if path.trim().is_empty() {
                f.add(&pp.field("bearerTokenFile"), "must not be empty");
            }
            f.too_long(path, MAX_STRING_LEN, &pp.field("bearerTokenFile"));
        }
        if let Some(b) = &prom.basic_auth {
            let bp = pp.field("basicAuth");
            f.too_long(&b.username, MAX_STRING_LEN, &bp.field("username"));
            f.too_long(&b.password_file, MAX_STRING_LEN, &bp.field("passwordFile"));
            if b.username.is_empty() {
                f.add(
                    &pp.field("basicAuth").field("username"),
                    "must not be empty",
                );
            }
            if b.password_file.trim().is_empty() {
                f.add(
                    &pp.field("basicAuth").field("passwordFile"),
                    "must not be empty",
                );
            }
        }
        f.too_many(
            prom.headers.len(),
            MAX_ENTRIES,
            "headers",
            &pp.field("headers"),
        );
        for (name, value) in prom.headers.iter().take(MAX_ENTRIES) {
            if name.len() > MAX_HEADER_NAME_LEN {
                f.add(
                    &pp.field("headers"),
                    format!(
                        "a header name is {} bytes long; at most {MAX_HEADER_NAME_LEN} are allowed",
                        name.len()
                    ),
                );
                continue;
            }
            let hp = pp.field("headers").field(name);
            f.too_long(value, MAX_HEADER_VALUE_LEN, &hp);
            check_header_value(value, &hp, f);
            if name.eq_ignore_ascii_case("authorization") {
                // Secrets stay out of specs (and so out of status, logs and the UI).
                f.add(
                    &hp,
                    "credentials must not be inline; use `bearerTokenFile` or `basicAuth`",
                );
            } else if !is_token(name) {
                f.add(&hp, format!("{name:?} is not a valid HTTP header name"));
            }
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    f.too_many(a.metrics.len(), MAX_METRICS, "metrics", &p.field("metrics"));
    for (i, m) in a.metrics.iter().enumerate().take(MAX_METRICS) {
        let mp = p.field("metrics").index(i);
        if f.too_long(&m.name, MAX_ITEM_NAME_LEN, &mp.field("name")) {
        } else if m.name.trim().is_empty() {
            f.add(&mp.field("name"), "must not be empty");
        } else if let Some(first) = seen.get(m.name.as_str()) {
            f.add(
                &mp.field("name"),
                format!("duplicate metric name `{}` (also metrics[{first}])", m.name),
            );
        } else {
            seen.insert(&m.name, i);
        }
        check_metric(m, &mp, f);
    }
    f.too_many(
        a.templates.len(),
        MAX_METRICS,
        "templates",
        &p.field("templates"),
    );
    for (i, t) in a.templates.iter().enumerate().take(MAX_METRICS) {
        let tp = p.field("templates").index(i);
        if f.too_long(&t.name, 253, &tp.field("name")) {
        } else if let Err(e) = dns_subdomain(&t.name) {
            f.add(&tp.field("name"), e);
        }
        f.too_many(t.args.len(), MAX_ENTRIES, "args", &tp.field("args"));
    }
}

fn check_metric(m: &Metric, p: &FieldPath, f: &mut Findings) {
    match (&m.builtin, &m.query) {
        (Some(_), Some(_)) => f.add(p, "set exactly one of `builtin` or `query`, not both"),
        (None, None) => f.add(p, "set exactly one of `builtin` or `query`"),
        _ => {}
    }
    if let Some(q) = &m.query {
        if f.too_long(q, MAX_QUERY_LEN, &p.field("query")) {
        } else if q.trim().is_empty() {
            f.add(&p.field("query"), "must not be empty");
        } else if let Err(e) = crate::template::variables(q) {
            f.add(&p.field("query"), e);
        }
    }
    let tp = p.field("thresholds");
    let (min, max) = (m.thresholds.min, m.thresholds.max);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        f.add(
            &tp,
            format!("min {lo} is greater than max {hi}: no value could pass"),
        );
    }
    if m.builtin == Some(crate::spec::BuiltinMetric::RequestSuccessRate) {
        for (k, v) in [("min", min), ("max", max)] {
            if let Some(v) = v
                && !(0.0..=100.0).contains(&v)
            {
                f.add(
                    &tp.field(k),
                    format!("{v} is outside 0..100 (the success rate is a percentage)"),
                );
            }
        }
    }
    if min.is_none() && max.is_none() && m.compare.is_none() {
        // A check without a limit always passes: that is no check at all.
        f.add(
            &tp,
            "set `min`, `max` (or `compare`): a metric without limits cannot fail",
        );
    }
    if m.critical && m.mode == crate::spec::MetricMode::Shadow {
        f.add(
            &p.field("critical"),
            "a shadow metric never acts, so it cannot be critical: remove `critical` or `mode: shadow`",
        );
    }
    if let Some(n) = m.min_requests
        && n < 0.0
    {
        f.add(&p.field("minRequests"), format!("{n} must not be negative"));
    }
    if let Some(i) = &m.interval {
        check_duration(i, &p.field("interval"), f);
    }
    if let Some(c) = &m.compare {
        let cp = p.field("compare");
        if !(0.0..=1.0).contains(&c.margin) {
            f.add(
                &cp.field("margin"),
                format!(
                    "{} is outside 0..1 (relative degradation, 0.1 = 10%)",
                    c.margin
                ),
            );
        }
        if !(0.5..1.0).contains(&c.confidence) {
            f.add(
                &cp.field("confidence"),
                format!(
                    "{} must be at least 0.5 and below 1 (e.g. 0.95)",
                    c.confidence
                ),
            );
        }
        let error_rate = c.kind == crate::spec::ComparisonKind::ErrorRate;
        if let Some(d) = &c.detect {
            let dp = cp.field("detect");
            if !error_rate {
                f.add(&dp, "applies to `kind: error-rate` only");
            } else if !f.too_long(d, MAX_STRING_LEN, &dp) {
                match crate::spec::Detect::parse(d) {
                    // The degradation to catch must lie beyond the one tolerated, or the two
                    // hypotheses of the sequential test coincide.
                    Ok(crate::spec::Detect::Ratio(r)) if r <= 1.0 + c.margin => f.add(
                        &dp,
                        format!(
                            "`{d}` is within the margin ({}x): detect must be larger than 1 + margin",
                            1.0 + c.margin
                        ),
                    ),
                    Ok(_) => {}
                    Err(e) => f.add(&dp, e),
                }
            }
        }
        if let Some(power) = c.power {
            let pp = cp.field("power");
            if !error_rate {
                f.add(&pp, "applies to `kind: error-rate` only");
            } else if !(0.5..1.0).contains(&power) {
                f.add(
                    &pp,
                    format!("{power} must be at least 0.5 and below 1 (e.g. 0.95)"),
                );
            }
        }
    }
}

fn check_schedule(s: &Schedule, p: &FieldPath, f: &mut Findings) {
    if s.windows.is_empty() {
        f.add(
            &p.field("windows"),
            "needs at least one window (or remove `schedule` to allow any time)",
        );
    }
    let mut tz = chrono_tz::Tz::UTC;
    if let Some(name) = &s.time_zone
        && !f.too_long(name, MAX_STRING_LEN, &p.field("timeZone"))
    {
        match crate::schedule::parse_time_zone(name) {
            Ok(zone) => tz = zone,
            Err(e) => f.add(&p.field("timeZone"), e),
        }
    }
    // "Never" is judged from now: a window whose only year has passed can no longer open.
    let now = chrono::Utc::now();
    f.too_many(s.windows.len(), MAX_WINDOWS, "windows", &p.field("windows"));
    for (i, w) in s.windows.iter().enumerate().take(MAX_WINDOWS) {
        let wp = p.field("windows").index(i);
        if f.too_long(w, MAX_STRING_LEN, &wp) {
            continue;
        }
        match crate::schedule::parse_window(w) {
            Err(e) => f.add(&wp, e),
            Ok(window) => {
                if crate::schedule::next_opening(&window, tz, now).is_none() {
                    f.add(
                        &wp,
                        format!(
                            "window {w:?} never opens: no time matches it from now until 2100 \
                             (an impossible date such as February 30, or a year that has passed)"
                        ),
                    );
                }
            }
        }
    }
}

fn check_webhooks(s: &RolloutSpec, p: &FieldPath, f: &mut Findings) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    f.too_many(s.webhooks.len(), MAX_WEBHOOKS, "webhooks", p);
    for (i, w) in s.webhooks.iter().enumerate().take(MAX_WEBHOOKS) {
        let wp = p.index(i);
        if f.too_long(&w.name, MAX_ITEM_NAME_LEN, &wp.field("name")) {
        } else if w.name.trim().is_empty() {
            f.add(&wp.field("name"), "must not be empty");
        } else if let Some(first) = seen.get(w.name.as_str()) {
            f.add(
                &wp.field("name"),
                format!(
                    "duplicate webhook name `{}` (also webhooks[{first}])",
                    w.name
                ),
            );
        } else {
            seen.insert(&w.name, i);
        }
        if f.too_long(&w.url, MAX_URL_LEN, &wp.field("url")) {
        } else if let Err(e) = http_url(&w.url) {
            f.add(&wp.field("url"), e);
        } else if url::Url::parse(&w.url)
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            // The spec is shown in status, the UI and `kubectl get -o yaml`: no secrets in it.
            f.add(
                &wp.field("url"),
                "credentials in the URL would put a secret in the spec: use `tokenFromEnv` or `tokenFromFile`",
            );
        }
        if let Some(t) = &w.timeout {
            check_duration(t, &wp.field("timeout"), f);
        }
        f.too_many(
            w.metadata.len(),
            MAX_ENTRIES,
            "entries",
            &wp.field("metadata"),
        );
        for (k, v) in w.metadata.iter().take(MAX_ENTRIES) {
            if !f.too_long(k, MAX_STRING_LEN, &wp.field("metadata")) {
                f.too_long(v, MAX_STRING_LEN, &wp.field("metadata").field(k));
            }
        }
        for (field, v) in [
            ("tokenFromEnv", &w.token_from_env),
            ("tokenFromFile", &w.token_from_file),
        ] {
            if let Some(v) = v {
                f.too_long(v, MAX_STRING_LEN, &wp.field(field));
            }
        }
        if w.token_from_env.is_some() && w.token_from_file.is_some() {
            f.add(
                &wp.field("tokenFromEnv"),
                "set at most one of `tokenFromEnv` or `tokenFromFile`",
            );
        }
    }
}

/// No HTTP request can carry a header value with CR, LF, NUL or another control character
/// (tab is allowed): a match on one never matches, a Prometheus header with one fails every
/// query. Escapes in a regex (`\n`) are fine; the raw characters are not.
fn check_header_value(v: &str, p: &FieldPath, f: &mut Findings) {
    if let Some(c) = v.chars().find(|&c| c.is_ascii_control() && c != '\t') {
        f.add(
            p,
            format!(
                "contains the control character U+{:04X}; header values cannot hold CR, LF, \
                 NUL or other control characters",
                c as u32
            ),
        );
    }
}

/// A Go-style duration longer than zero (a zero interval or timeout would spin or never wait).
fn check_duration(s: &str, p: &FieldPath, f: &mut Findings) {
    if f.too_long(s, MAX_STRING_LEN, p) {
        return;
    }
    match crate::duration::parse(s) {
        Err(e) => f.add(p, e),
        Ok(d) if d.is_zero() => f.add(p, "must be longer than 0s"),
        Ok(_) => {}
    }
}

/// An absolute http(s) URL with a host.
fn http_url(s: &str) -> Result<(), String> {
    let u = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "URL {s:?} must use http or https, not {}",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {s:?} has no host"));
    }
    Ok(())
}

/// `host:port`, where host is a name, an IPv4 address or a bracketed IPv6 address.
pub fn host_port(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{s:?} is not a host:port address ({why})"));
    let Some((host, port)) = s.rsplit_once(':') else {
        return bad("missing :port");
    };
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return bad("port must be 1..65535"),
        Ok(_) => {}
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => bad("invalid IPv6 address"),
        };
    }
    if host.is_empty() {
        return bad("missing host");
    }
    let name_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !name_ok {
        return bad("invalid host name");
    }
    Ok(())
}

/// A DNS-1123 label: lowercase letters, digits and `-`, starting and ending alphanumeric.
fn dns_label(s: &str, max: usize) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} must be at most {max} lowercase letters, digits or `-`, starting and ending \
             with a letter or digit"
        ))
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// An HTTP token (RFC 9110 field name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// The regex crate repeats the pattern with a caret line; the last line is the reason.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        for ok in ["127.0.0.1:9081", "reviews:9080", "[::1]:80", "a.b-c.d:1"] {
            assert!(host_port(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            ":80",
            "host:0",
            "host:70000",
            "[zz]:80",
            "a b:80",
            "-a:1",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(http_url("http://prometheus:9090").is_ok());
        assert!(http_url("ftp://x").is_err());
        assert!(http_url("prometheus:9090").is_err());
        assert!(http_url("not a url").is_err());
    }
}
