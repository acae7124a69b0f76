//! The routes file (`BRIDGE_CONFIG`): which inbound routes exist, how each is authenticated and
//! how its payload maps to commands. Parsed strictly: unknown keys are errors that name the
//! route and the field.

use super::ConfigError;
use crate::domain::queue::RouteMode;
use crate::domain::Action;
use crate::inbound::auth::AuthConfig;
use crate::mapping::Filter;
use serde::Deserialize;

/// One `routes:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Served at `POST /hooks/{name}`.
    pub name: String,
    pub action: Action,
    pub auth: AuthConfig,
    /// jq filter from the sender's payload to canonical commands; absent or "." = the body is
    /// already one canonical command.
    #[serde(default)]
    pub map: Option<String>,
    /// `sync` (default: the panel is called during the request) or `queued` (202, then the
    /// worker).
    #[serde(default)]
    pub mode: RouteMode,
    /// Where a queued route's results are posted, signed (queued routes only).
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
}

/// `notify:` of a queued route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `https://…` (or `http://` on loopback, for local runs).
    pub url: String,
    /// References of `whsec_…` secrets (`env:NAME`, `secretsmanager:ID[#key]`); several =
    /// rotation (each event carries one signature per secret).
    pub secrets: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    pub routes: Vec<RouteConfig>,
}

/// Longest route name.
pub const MAX_ROUTE_NAME: usize = 64;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROUTE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl RoutesFile {
    /// Parses and checks the file's text. `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: RoutesFile = serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError(format!("{origin}: {}", describe_yaml_error(text, &e))))?;
        file.check(origin)?;
        Ok(file)
    }

    /// Reads and parses a file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{origin}: cannot read the routes file: {e}")))?;
        Self::parse(&text, &origin)
    }

    /// Compiles every route's `map` filter now and names the route of the first that does not
    /// compile. The bridge itself compiles a filter on the route's first delivery
    /// ([`Filter::lazy`]); `check-config` and the test of the embedded routes call this so that a
    /// broken filter is refused before it ships.
    pub fn check_filters(&self) -> Result<(), ConfigError> {
        for r in &self.routes {
            if let Some(src) = r.map.as_deref() {
                Filter::check(src)
                    .map_err(|e| ConfigError(format!("route `{}`, field map: {e}", r.name)))?;
            }
        }
        Ok(())
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        if self.routes.is_empty() {
            return Err(ConfigError(format!("{origin}: `routes` is empty")));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            if !valid_name(&r.name) {
                return Err(ConfigError(format!(
                    "{origin}: route #{i}, field name: `{}` must be 1-{MAX_ROUTE_NAME} letters, digits, `-` or `_`",
                    r.name.chars().take(80).collect::<String>()
                )));
            }
            if let Some(n) = &r.notify {
                if r.mode != RouteMode::Queued {
                    return Err(ConfigError(format!(
                        "{origin}: route `{}`, field notify: only a queued route (mode: queued) notifies its results",
                        r.name
                    )));
                }
                let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                    .iter()
                    .any(|p| n.url.starts_with(p));
                if !(n.url.starts_with("https://") || loopback) {
                    return Err(ConfigError(format!(
                        "{origin}: route `{}`, field notify.url: must be https:// (http:// only on loopback)",
                        r.name
                    )));
                }
                if n.secrets.is_empty() {
                    return Err(ConfigError(format!(
                        "{origin}: route `{}`, field notify.secrets: name at least one whsec_ secret",
                        r.name
                    )));
                }
            }
            if !seen.insert(r.name.as_str()) {
                return Err(ConfigError(format!(
                    "{origin}: route `{}`, field name: defined twice",
                    r.name
                )));
            }
        }
        Ok(())
    }
}

/// serde_yaml's message plus, when it can be found, the name of the route it is about.
fn describe_yaml_error(text: &str, e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    // Messages look like "routes[1].auth: unknown field `foo`, expected ... at line 9 column 7".
    let Some(rest) = msg.strip_prefix("routes[") else {
        return msg;
    };
    let Some(idx) = rest.split(']').next().and_then(|n| n.parse::<usize>().ok()) else {
        return msg;
    };
    let name = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("routes")?
                .get(idx)?
                .get("name")?
                .as_str()
                .map(str::to_string)
        });
    match name {
        Some(name) => format!("route `{name}`: {msg}"),
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
routes:
  - name: payouts
    action: create
    auth:
      scheme: api-key
      secrets: [env:PAYOUTS_KEY]
  - name: voids
    action: cancel
    auth: { scheme: none }
    map: "."
"#;

    #[test]
    fn parses_a_good_file() {
        let f = RoutesFile::parse(GOOD, "routes.yaml").unwrap();
        assert_eq!(f.routes.len(), 2);
        assert_eq!(f.routes[0].action, Action::Create);
        assert_eq!(f.routes[1].map.as_deref(), Some("."));
    }

    #[test]
    fn unknown_key_names_route_and_field() {
        let bad = GOOD.replace("action: cancel", "action: cancel\n    mapp: x");
        let e = RoutesFile::parse(&bad, "routes.yaml").unwrap_err().0;
        assert!(e.contains("voids") && e.contains("mapp"), "{e}");
    }

    #[test]
    fn queued_routes_and_notify() {
        let q = GOOD.replace(
            "action: create",
            "action: create\n    mode: queued\n    notify: {url: \"https://example.com/h\", secrets: [env:N]}",
        );
        let f = RoutesFile::parse(&q, "r.yaml").unwrap();
        assert_eq!(f.routes[0].mode, RouteMode::Queued);
        assert_eq!(f.routes[1].mode, RouteMode::Sync);
        assert_eq!(f.routes[0].notify.as_ref().unwrap().secrets, vec!["env:N"]);
        let sync_notify = q.replace("mode: queued", "mode: sync");
        let e = RoutesFile::parse(&sync_notify, "r.yaml").unwrap_err().0;
        assert!(e.contains("payouts") && e.contains("notify"), "{e}");
        let plain_http = q.replace("https://example.com", "http://example.com");
        assert!(RoutesFile::parse(&plain_http, "r.yaml").is_err());
        let bad_mode = GOOD.replace("action: create", "action: create\n    mode: later");
        assert!(RoutesFile::parse(&bad_mode, "r.yaml").is_err());
    }

    #[test]
    fn check_filters_names_the_route_of_a_filter_that_does_not_compile() {
        let f = RoutesFile::parse(GOOD, "routes.yaml").unwrap();
        f.check_filters().unwrap();
        let bad = GOOD.replace("map: \".\"", "map: \"{a: nosuchfilter}\"");
        // parsing does not compile filters: that is check_filters' job
        let f = RoutesFile::parse(&bad, "routes.yaml").unwrap();
        let e = f.check_filters().unwrap_err().0;
        assert!(
            e.contains("route `voids`, field map") && e.contains("nosuchfilter"),
            "{e}"
        );
    }

    #[test]
    fn bad_action_and_duplicate_names() {
        let bad = GOOD.replace("action: cancel", "action: refund");
        let e = RoutesFile::parse(&bad, "r.yaml").unwrap_err().0;
        assert!(e.contains("voids") && e.contains("refund"), "{e}");
        let dup = GOOD.replace("name: voids", "name: payouts");
        let e = RoutesFile::parse(&dup, "r.yaml").unwrap_err().0;
        assert!(e.contains("payouts") && e.contains("twice"), "{e}");
        let e = RoutesFile::parse(&GOOD.replace("name: voids", "name: \"a b\""), "r.yaml")
            .unwrap_err()
            .0;
        assert!(e.contains("field name"), "{e}");
    }
}
