//! Where `http_request` tasks may send: the decision, on parsed URLs and resolved addresses.
//!
//! A task's request goes out from the engine and its answer comes back in the run's result,
//! so an unchecked URL is server-side request forgery: the engine's own API (which trusts this
//! machine in `local` access mode), the LAN, the cloud's metadata service. Two regimes:
//!
//! - **Listed** (`[handlers.http_request] allow = ["https://api.example.com", …]`): a URL is
//!   allowed when an entry is its prefix — the same scheme, host and port (an absent port is
//!   the scheme's default), and a path under the entry's on a segment boundary (`/hooks` covers
//!   `/hooks` and `/hooks/a`, not `/hooksX`; below a path prefix an encoded `/`, `\` or `.` is
//!   refused, since the far end may decode it into `..`). Nothing else, whatever it resolves
//!   to: the operator named what may be reached. An empty list turns `http_request` off.
//! - **Guarded** (no `allow` key): any destination except what is never a task's business —
//!   the engine's own listeners (loopback, or its bind address, at its port), unspecified
//!   (`0.0.0.0` reaches this machine), link-local (169.254.0.0/16, fe80::/10: cloud metadata),
//!   the other clouds' metadata addresses, and reserved ranges. When the engine listens beyond
//!   loopback (its API faces a network), only public addresses: no loopback, no private
//!   ranges — the LAN and this machine must then be listed to be reached. A loopback-only
//!   engine, the default, keeps reaching its neighbours on this machine and the LAN, so
//!   existing tasks keep working there.
//!
//! URLs are judged as parsed by `url` (the parser `reqwest` sends with, so the check and the
//! request never disagree about the host). A host name is judged by the addresses it resolves
//! to ([`Egress::check_resolved`]; the engine resolves, then calls this), so DNS cannot point
//! an allowed-looking name at a forbidden address; a name other than `localhost` that resolves
//! to loopback is refused (the DNS-rebinding trick). Redirects are judged hop by hop with
//! [`Egress::check`]. Nothing here does I/O.

use core::fmt;
use core::net::{IpAddr, SocketAddr};

use url::{Host, Url};

use crate::error::Invalid;
use crate::net::{scope, unmapped, Scope};
use crate::redact::redact_url;

/// The code of every refused destination.
pub const NOT_ALLOWED: &str = "destination_not_allowed";

/// The config key of the list, for messages.
const KEY: &str = "[handlers.http_request] allow";

/// One entry of the list: scheme, host, port and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPrefix {
    scheme: String,
    host: Host<String>,
    port: u16,
    /// Without its trailing `/`; empty for the whole origin.
    path: String,
}

impl UrlPrefix {
    /// Parse an entry (`https://api.example.com`, `http://127.0.0.1:9000/hooks/`); `field`
    /// names it in the problem.
    pub fn parse(text: &str, field: &str) -> Result<UrlPrefix, Invalid> {
        let bad = |why: String| {
            Invalid::new(
                "invalid_url",
                field,
                format!(
                    "{text:?} {why}: an entry is a URL prefix such as https://api.example.com \
                     or http://127.0.0.1:9000/hooks/"
                ),
            )
        };
        let url = Url::parse(text.trim()).map_err(|e| bad(format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("is not an http:// or https:// URL".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("has a user name or password".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("has a query or a fragment".into()));
        }
        let host = url
            .host()
            .ok_or_else(|| bad("has no host".into()))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad("has no port".into()))?;
        Ok(UrlPrefix {
            scheme: url.scheme().to_string(),
            host,
            port,
            path: url.path().trim_end_matches('/').to_string(),
        })
    }

    /// Whether `url` is under this prefix.
    pub fn matches(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host().is_some_and(|h| h == self.host)
            && url.port_or_known_default() == Some(self.port)
            && path_under(url.path(), &self.path)
    }
}

impl fmt::Display for UrlPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Host` writes an IPv6 address in brackets.
        write!(
            f,
            "{}://{}:{}{}/",
            self.scheme, self.host, self.port, self.path
        )
    }
}

/// `path` is `prefix`, or below it on a segment boundary, with no encoded separator below.
fn path_under(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    let lower = rest.to_ascii_lowercase();
    (rest.is_empty() || rest.starts_with('/'))
        && !["%2f", "%5c", "%2e"].iter().any(|e| lower.contains(e))
}

/// `localhost` and its subdomains (RFC 6761): this machine, whatever DNS says.
fn is_localhost(domain: &str) -> bool {
    let d = domain.trim_end_matches('.');
    d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
}

/// What `http_request` may reach; see the module header.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// `Some`: only these prefixes (empty: the handler is off). `None`: the guard.
    listed: Option<Vec<UrlPrefix>>,
    /// Guarded and listening beyond loopback: public addresses only.
    public_only: bool,
    /// Where the engine itself listens (port 0: not known yet).
    own: Vec<SocketAddr>,
}

impl Egress {
    /// `allow` as configured (`None`: the key is absent) for an engine listening on `own`
    /// (its listeners; a port of 0 is one not known yet).
    pub fn new(allow: Option<Vec<UrlPrefix>>, own: Vec<SocketAddr>) -> Egress {
        let public_only = allow.is_none() && own.iter().any(|a| scope(a.ip()) != Scope::Loopback);
        Egress {
            listed: allow,
            public_only,
            own,
        }
    }

    /// Whether an explicit list is in force (then resolved addresses are not judged).
    pub fn is_listed(&self) -> bool {
        self.listed.is_some()
    }

    /// Check a URL as written in a task (`payload.url`).
    pub fn check_text(&self, text: &str) -> Result<(), Invalid> {
        let url = Url::parse(text).map_err(|e| {
            Invalid::new(
                "invalid_payload",
                "payload.url",
                format!("{} is not a URL: {e}", redact_url(text)),
            )
        })?;
        self.check(&url)
    }

    /// Check a URL about to be requested (the rendered one, or a redirect's target).
    pub fn check(&self, url: &Url) -> Result<(), Invalid> {
        let refuse = |why: String| {
            Err(Invalid::new(
                NOT_ALLOWED,
                "payload.url",
                format!("{} is not allowed: {why}", redact_url(url.as_str())),
            ))
        };
        if !matches!(url.scheme(), "http" | "https") {
            return refuse("only http:// and https:// URLs are".into());
        }
        if let Some(list) = &self.listed {
            if list.is_empty() {
                return refuse(format!("the http_request handler is off ({KEY} is empty)"));
            }
            if list.iter().any(|p| p.matches(url)) {
                return Ok(());
            }
            return refuse(format!("it is not under any entry of {KEY}"));
        }
        let port = url.port_or_known_default();
        let ip = match url.host() {
            None => return refuse("it has no host".into()),
            Some(Host::Domain(d)) if is_localhost(d) => None,
            // Judged by what it resolves to, when it is resolved.
            Some(Host::Domain(_)) => return Ok(()),
            Some(Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        };
        let kind = ip.map_or(Scope::Loopback, scope);
        if let Err(why) = self.judge(kind) {
            return refuse(why);
        }
        let own_api = self.own.iter().any(|o| {
            o.port() != 0
                && Some(o.port()) == port
                && (kind == Scope::Loopback || ip.map(unmapped) == Some(unmapped(o.ip())))
        });
        if own_api {
            return refuse(format!(
                "it is the engine's own API; list it under {KEY} if a task really must call it"
            ));
        }
        Ok(())
    }

    /// Whether a connection may go to `ip`, an address `host` resolved to. The reason, when
    /// not, is for the run's error.
    pub fn check_resolved(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        if self.listed.is_some() {
            return Ok(());
        }
        let kind = scope(ip);
        self.judge(kind)
            .map_err(|why| format!("{host} resolves to {ip}, {why}"))?;
        if kind == Scope::Loopback && !is_localhost(host) {
            return Err(format!(
                "{host} resolves to {ip}, a loopback address: write localhost or 127.0.0.1 to \
                 call this machine, or list the URL under {KEY}"
            ));
        }
        Ok(())
    }

    /// The guard's verdict on an address of `kind` (the port aside).
    fn judge(&self, kind: Scope) -> Result<(), String> {
        match kind {
            Scope::Unspecified | Scope::LinkLocal | Scope::Metadata | Scope::Reserved => {
                Err(format!("{} is never a task's destination", kind.describe()))
            }
            Scope::Loopback | Scope::Private if self.public_only => Err(format!(
                "{}: the engine listens beyond loopback, so without {KEY} tasks reach public \
                 addresses only",
                kind.describe()
            )),
            _ => Ok(()),
        }
    }

    /// The rule in force, for the start-up log.
    pub fn describe(&self) -> String {
        match &self.listed {
            Some(list) if list.is_empty() => "off (the allow list is empty)".into(),
            Some(list) => {
                let entries: Vec<String> = list.iter().map(ToString::to_string).collect();
                format!("only {}", entries.join(", "))
            }
            None if self.public_only => {
                "public addresses only (no allow list; the engine listens beyond loopback)".into()
            }
            None => "anywhere but the engine itself, link-local and metadata addresses \
                     (no allow list; the engine listens on loopback)"
                .into(),
        }
    }
}
