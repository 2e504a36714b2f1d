//! `TrafficPlan`: the one abstract model of where requests go.
//!
//! The engine decides a plan; routers (Istio VirtualService, Envoy xDS) only translate it.
//! A plan is an ordered list of routes; the first route whose matches all hold takes the
//! request; the last route has no matches (the default). Each route splits its requests across
//! weighted destinations (weights add up to 100) and may mirror a percentage to the canary.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::{HttpMatch, StringMatch};

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Destination {
    Stable,
    Canary,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightedDestination {
    pub destination: Destination,
    pub weight: u32,
    /// A cookie this destination's responses set (sticky sessions: the client that reached
    /// the canary keeps reaching it through the plan's cookie route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_cookie: Option<SetCookie>,
}

/// A `Set-Cookie` a destination's responses carry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    pub max_age_seconds: u64,
}

impl SetCookie {
    /// The `Set-Cookie` header value: `<name>=<value>; Max-Age=<s>; Path=/`.
    pub fn header_value(&self) -> String {
        format!(
            "{}={}; Max-Age={}; Path=/",
            self.name, self.value, self.max_age_seconds
        )
    }

    /// A `cookie` header match that holds when the request carries this cookie, wherever it
    /// sits among the others (`a=1; <name>=<value>; b=2`).
    pub fn request_match(&self) -> HttpMatch {
        let regex = format!(
            "^(.*?; ?)?{}={}(;.*)?$",
            regex_escape(&self.name),
            regex_escape(&self.value)
        );
        HttpMatch {
            headers: [(
                "cookie".to_string(),
                StringMatch {
                    regex: Some(regex),
                    ..Default::default()
                },
            )]
            .into(),
        }
    }
}

/// `s` as a literal in a regular expression (RE2 and Rust syntax alike).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The sticky-session cookie's value in a plan built from the spec alone (`sluice plan`, the
/// golden files). The engine stamps the canary's revision in its place when it applies a stage
/// ([`TrafficPlan::for_revision`]): a client holding an earlier rollout's cookie must not reach
/// the next rollout's canary ahead of its weight.
pub const STICKY_COOKIE_VALUE: &str = "canary";

/// The cookie value naming the cohort of one canary revision: 16 hex digits of a stable hash
/// (FNV-1a), the same on every replica and after a restart, safe in any cookie and regex.
pub fn sticky_value(revision: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in revision.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    pub destination: Destination,
    /// 1..=100 percent of the route's requests are copied.
    pub percent: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Any of these matches selects the route (OR); empty means "every request".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    pub destinations: Vec<WeightedDestination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPlan {
    pub routes: Vec<Route>,
}

impl TrafficPlan {
    /// Everything to stable.
    pub fn stable_only() -> Self {
        Self::weighted(0)
    }

    /// One default route: `canary_weight`% to canary, the rest to stable.
    pub fn weighted(canary_weight: u32) -> Self {
        let w = canary_weight.min(100);
        TrafficPlan {
            routes: vec![Route {
                matches: Vec::new(),
                destinations: split(w),
                mirror: None,
            }],
        }
    }

    /// A canary step with sticky sessions: requests carrying `cookie` go to the canary (a
    /// match route ahead of the weighted one), and the canary's answers on the weighted route
    /// set that cookie. At 0% there is nothing to stick to: a plain weighted plan.
    pub fn sticky_weighted(canary_weight: u32, cookie: &SetCookie) -> Self {
        let mut plan = Self::weighted(canary_weight);
        if plan.canary_weight() == 0 {
            return plan;
        }
        for d in &mut plan.routes[0].destinations {
            if d.destination == Destination::Canary {
                d.set_cookie = Some(cookie.clone());
            }
        }
        plan.routes.insert(
            0,
            Route {
                matches: vec![cookie.request_match()],
                destinations: vec![WeightedDestination {
                    destination: Destination::Canary,
                    weight: 100,
                    set_cookie: None,
                }],
                mirror: None,
            },
        );
        plan
    }

    /// The plan with its sticky cookie (if any) naming `revision`'s cohort
    /// ([`sticky_value`]): the canary's answers set that value and only it routes to the canary.
    pub fn for_revision(mut self, revision: &str) -> Self {
        let Some(mut cookie) = self.sticky_cookie().cloned() else {
            return self;
        };
        let old = cookie.request_match();
        cookie.value = sticky_value(revision);
        let new = cookie.request_match();
        for route in &mut self.routes {
            for m in &mut route.matches {
                if *m == old {
                    *m = new.clone();
                }
            }
            for d in &mut route.destinations {
                if d.set_cookie.is_some() {
                    d.set_cookie = Some(cookie.clone());
                }
            }
        }
        self
    }

    /// The cookie the plan's canary answers set, if any.
    pub fn sticky_cookie(&self) -> Option<&SetCookie> {
        self.routes
            .iter()
            .flat_map(|r| &r.destinations)
            .find_map(|d| d.set_cookie.as_ref())
    }

    /// Matching requests to the canary; the rest to stable, with an optional mirror of
    /// `mirror_percent`% of them to the canary (dark launch). No matches: plain stable.
    pub fn matched(matches: &[HttpMatch], mirror_percent: Option<u32>) -> Self {
        let mut routes = Vec::new();
        if !matches.is_empty() {
            routes.push(Route {
                matches: matches.to_vec(),
                destinations: vec![WeightedDestination {
                    destination: Destination::Canary,
                    weight: 100,
                    set_cookie: None,
                }],
                mirror: None,
            });
        }
        routes.push(Route {
            matches: Vec::new(),
            destinations: split(0),
            mirror: mirror_percent.filter(|p| *p > 0).map(|p| Mirror {
                destination: Destination::Canary,
                percent: p.min(100),
            }),
        });
        TrafficPlan { routes }
    }

    /// Canary weight of the default (last) route.
    pub fn canary_weight(&self) -> u32 {
        self.routes
            .last()
            .map(|r| weight_of(r, Destination::Canary))
            .unwrap_or(0)
    }

    /// Whether any request (routed or mirrored) can reach the canary.
    pub fn touches_canary(&self) -> bool {
        self.routes.iter().any(|r| {
            weight_of(r, Destination::Canary) > 0
                || r.mirror
                    .as_ref()
                    .is_some_and(|m| m.destination == Destination::Canary)
        })
    }

    /// Whether any request (routed or mirrored) can reach stable.
    pub fn touches_stable(&self) -> bool {
        self.routes.iter().any(|r| {
            weight_of(r, Destination::Stable) > 0
                || r.mirror
                    .as_ref()
                    .is_some_and(|m| m.destination == Destination::Stable)
        })
    }

    /// Structural invariants every router relies on: at least one route, the last one without
    /// matches, every route's weights adding up to 100, mirror percentages within 1..=100.
    pub fn check(&self) -> Result<(), String> {
        let Some(last) = self.routes.last() else {
            return Err("traffic plan has no routes".into());
        };
        if !last.matches.is_empty() {
            return Err("the last route must match every request".into());
        }
        for (i, r) in self.routes.iter().enumerate() {
            let sum: u32 = r.destinations.iter().map(|d| d.weight).sum();
            if sum != 100 {
                return Err(format!("routes[{i}]: weights add up to {sum}, not 100"));
            }
            if let Some(m) = &r.mirror
                && (m.percent == 0 || m.percent > 100)
            {
                return Err(format!(
                    "routes[{i}].mirror: percent {} outside 1..=100",
                    m.percent
                ));
            }
        }
        Ok(())
    }
}

fn split(canary_weight: u32) -> Vec<WeightedDestination> {
    vec![
        WeightedDestination {
            destination: Destination::Stable,
            weight: 100 - canary_weight,
            set_cookie: None,
        },
        WeightedDestination {
            destination: Destination::Canary,
            weight: canary_weight,
            set_cookie: None,
        },
    ]
}

fn weight_of(route: &Route, dest: Destination) -> u32 {
    route
        .destinations
        .iter()
        .filter(|d| d.destination == dest)
        .map(|d| d.weight)
        .sum()
}

/// `{name}-stable` / `{name}-canary` in namespace `default` (and standalone files without a
/// namespace), `{namespace}-{name}-...` otherwise. The Envoy router names its clusters so and the
/// analysis side queries Envoy's `envoy_cluster_name` label with the same names: both read
/// them from here.
pub fn cluster_name(namespace: Option<&str>, name: &str, dest: Destination) -> String {
    let suffix = match dest {
        Destination::Stable => "stable",
        Destination::Canary => "canary",
    };
    format!("{}-{suffix}", name_prefix(namespace, name))
}

/// `{name}` or `{namespace}-{name}`: the virtual host's name and its clusters' prefix.
pub fn name_prefix(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        None | Some("default") | Some("") => name.to_string(),
        Some(ns) => format!("{ns}-{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_revision_gets_its_own_cookie_cohort() {
        let cookie = SetCookie {
            name: "sluice-canary".into(),
            value: STICKY_COOKIE_VALUE.into(),
            max_age_seconds: 3600,
        };
        let base = TrafficPlan::sticky_weighted(20, &cookie);
        let v2 = base.clone().for_revision("v2");
        let v3 = base.clone().for_revision("v3");
        let c2 = v2.sticky_cookie().unwrap().clone();
        let c3 = v3.sticky_cookie().unwrap().clone();
        assert_ne!(
            c2.value, c3.value,
            "a v2 cookie must not select v3's canary"
        );
        assert_eq!(c2.value, sticky_value("v2"));
        assert!(c2.value.chars().all(|c| c.is_ascii_hexdigit()));
        // The cookie route matches exactly the value the canary's answers set.
        assert_eq!(v2.routes[0].matches, vec![c2.request_match()]);
        assert_eq!(v2.canary_weight(), 20);
        assert!(v2.check().is_ok());
        // Nothing else changes; plans without a cookie are left alone.
        assert_eq!(
            TrafficPlan::weighted(30).for_revision("v2"),
            TrafficPlan::weighted(30)
        );
        assert_eq!(v2.clone().for_revision("v2"), v2);
    }

    #[test]
    fn a_sticky_step_routes_the_cookie_to_the_canary_whose_answers_set_it() {
        let cookie = SetCookie {
            name: "sluice-canary".into(),
            value: STICKY_COOKIE_VALUE.into(),
            max_age_seconds: 3600,
        };
        let p = TrafficPlan::sticky_weighted(20, &cookie);
        p.check().unwrap();
        assert_eq!(p.canary_weight(), 20);
        assert_eq!(p.routes.len(), 2);
        assert_eq!(p.routes[0].matches, vec![cookie.request_match()]);
        assert_eq!(p.routes[0].destinations[0].destination, Destination::Canary);
        assert_eq!(
            p.routes[1].destinations[1].set_cookie.as_ref(),
            Some(&cookie)
        );
        assert_eq!(p.routes[1].destinations[0].set_cookie, None);
        assert_eq!(p.sticky_cookie(), Some(&cookie));
        assert_eq!(
            cookie.header_value(),
            "sluice-canary=canary; Max-Age=3600; Path=/"
        );
        let re = regex::Regex::new(
            cookie.request_match().headers["cookie"]
                .regex
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        for yes in [
            "sluice-canary=canary",
            "a=1; sluice-canary=canary",
            "a=1;sluice-canary=canary; b=2",
        ] {
            assert!(re.is_match(yes), "{yes}");
        }
        for no in [
            "sluice-canary=canaryX",
            "xsluice-canary=canary",
            "a=sluice-canary=canary",
            "",
        ] {
            assert!(!re.is_match(no), "{no}");
        }
        assert_eq!(
            TrafficPlan::sticky_weighted(0, &cookie),
            TrafficPlan::weighted(0)
        );
        assert_eq!(TrafficPlan::stable_only().sticky_cookie(), None);
    }

    #[test]
    fn weighted_plans_add_to_100() {
        for w in [0, 1, 50, 99, 100, 150] {
            let p = TrafficPlan::weighted(w);
            p.check().unwrap();
            assert_eq!(p.canary_weight(), w.min(100));
        }
        assert!(!TrafficPlan::stable_only().touches_canary());
    }

    #[test]
    fn matched_plan_puts_matches_first_and_mirrors_the_rest() {
        let m = HttpMatch {
            headers: [(
                "x-user".to_string(),
                StringMatch {
                    exact: Some("beta".into()),
                    ..Default::default()
                },
            )]
            .into(),
        };
        let p = TrafficPlan::matched(std::slice::from_ref(&m), Some(20));
        p.check().unwrap();
        assert_eq!(p.routes.len(), 2);
        assert_eq!(p.routes[0].matches, vec![m]);
        assert_eq!(p.routes[1].mirror.as_ref().unwrap().percent, 20);
        assert_eq!(p.canary_weight(), 0);
        assert!(p.touches_canary());
    }

    #[test]
    fn check_rejects_bad_weights() {
        let mut p = TrafficPlan::weighted(10);
        p.routes[0].destinations[0].weight = 80;
        assert!(p.check().is_err());
        assert!(TrafficPlan { routes: vec![] }.check().is_err());
    }
}
