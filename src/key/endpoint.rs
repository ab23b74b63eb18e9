//! KMS endpoints: their syntax, and which hosts may receive a credential.
//!
//! The key vault lives in the database, and whoever controls the database
//! can write a key document whose `masterKey` names any host. A request to
//! that host carries the application's bearer token (Azure, GCP) or trusts
//! the key it answers with (AWS). So an endpoint read from a key document
//! must be plain `host[:port]` and must name a host on the provider's public
//! list or one the application allowed; the check is made on the string,
//! before any DNS lookup or connection. An endpoint the application passes
//! itself (creating a key, the rewrap target) is trusted for that call.

use super::ProviderKind;
use std::fmt;

/// Where an endpoint string came from, which decides what syntax it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointOrigin {
    /// Passed by the application (`masterKey` of `create_data_key`, the
    /// rewrap target, `--master-key`): `host[:port]` or
    /// `https://host[:port]` with an optional trailing `/`.
    Application,
    /// Read from a key document: plain `host[:port]` only.
    KeyDocument,
}

/// A KMS endpoint: a host and an optional port, normalised for comparison
/// (lower case, no trailing dot). Displays as `host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    port: Option<u16>,
}

/// Why an endpoint string is refused. The string itself is not quoted: it
/// may come from a key document, and a malformed value is not shown back
/// (a well-formed host that is not allowed is named by the caller).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid KMS endpoint: {reason}")]
pub struct EndpointError {
    reason: &'static str,
}

impl EndpointError {
    /// What is wrong with the endpoint.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// At most 255 printable ASCII characters of `s`, anything else as `?`, so
/// a hostile string cannot forge log lines or hide in an error message.
pub(crate) fn sanitize_host(s: &str) -> String {
    s.chars()
        .take(255)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl Endpoint {
    /// Parses an endpoint string that came from `origin`.
    pub fn parse(input: &str, origin: EndpointOrigin) -> Result<Self, EndpointError> {
        let err = |reason| EndpointError { reason };
        let mut rest = input;
        if let Some((scheme, after)) = input.split_once("://") {
            if origin == EndpointOrigin::KeyDocument {
                return Err(err(
                    "a scheme is not allowed in a key document (host[:port] only)",
                ));
            }
            if !scheme.eq_ignore_ascii_case("https") {
                return Err(err("schemes other than https:// are not allowed"));
            }
            rest = after.strip_suffix('/').unwrap_or(after);
        }
        if rest.contains('@') {
            return Err(err("userinfo is not allowed"));
        }
        if rest.contains(['/', '?', '#', '\\']) {
            return Err(err("paths, queries and fragments are not allowed"));
        }
        if rest.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(err("characters other than printable ASCII are not allowed"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| err("an unterminated IPv6 literal is not allowed"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(err("this IPv6 literal is not allowed: not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err("text after an IPv6 literal is not allowed"))?,
                ),
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => {
                const BAD_PORT: &str =
                    "this port is not allowed: a port is a number from 1 to 65535";
                if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(BAD_PORT));
                }
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(err(BAD_PORT)),
                    Ok(n) => Some(n),
                }
            }
        };
        let mut host = host.to_ascii_lowercase();
        if !host.starts_with('[') {
            if let Some(h) = host.strip_suffix('.') {
                host = h.to_owned();
            }
            if host.is_empty() || host.len() > 253 || !host.split('.').all(valid_label) {
                return Err(err(
                    "this host name is not allowed: labels of letters, digits and '-' separated by '.'",
                ));
            }
        }
        Ok(Endpoint { host, port })
    }

    /// The host, lower case, without a trailing dot.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port a connection uses (443 when none was given).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(443)
    }

    /// This endpoint with `port` when it names none: for KMIP, where a bare
    /// host means port 5696, not 443.
    pub fn with_default_port(mut self, port: u16) -> Endpoint {
        self.port.get_or_insert(port);
        self
    }

    /// `https://host[:port]`.
    pub fn https_base(&self) -> String {
        format!("https://{self}")
    }

    /// Whether the host is an IP literal in any spelling a resolver might
    /// accept (dotted quad, `127.1`, `2130706433`, hex, bracketed IPv6):
    /// such a host never matches a name on a public list.
    pub fn is_ip_literal(&self) -> bool {
        self.host.starts_with('[')
            || self
                .host
                .split('.')
                .all(|l| l.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x'))
                && self
                    .host
                    .split('.')
                    .any(|l| l.bytes().next().is_some_and(|b| b.is_ascii_digit()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Normalises an endpoint the application passes (`https://host:port/` or
/// `host:port`) to the `host[:port]` stored in a key document, keeping the
/// caller's spelling of the host.
pub(crate) fn normalize_application_endpoint(input: &str) -> Result<String, EndpointError> {
    Endpoint::parse(input, EndpointOrigin::Application)?;
    let rest = match input.split_once("://") {
        Some((_, after)) => after.strip_suffix('/').unwrap_or(after),
        None => input,
    };
    Ok(rest.to_owned())
}

/// Whether `host` is `suffix` preceded by at least one valid label.
fn under(host: &str, suffix: &str) -> bool {
    host.strip_suffix(suffix)
        .and_then(|h| h.strip_suffix('.'))
        .is_some_and(|prefix| prefix.split('.').all(valid_label))
}

/// Whether `endpoint` is one of the provider's public service hosts, on the
/// default port.
///
/// AWS hosts are named exactly, never by domain: under `amazonaws.com`,
/// `amazonaws.com.cn` and `vpce.amazonaws.com` anyone can get a name that
/// serves their own code (API Gateway `*.execute-api.<region>.amazonaws.com`,
/// S3 buckets `<bucket>.s3.amazonaws.com`, ELB `*.elb.amazonaws.com`,
/// PrivateLink endpoint services `*.vpce-svc-….vpce.amazonaws.com`), and such
/// a host could answer `Decrypt` with a key of its choice and read the signed
/// request (access key id, session token).
///
/// Azure keeps its wildcards. Every name under `vault.azure.net`,
/// `managedhsm.azure.net`, `vault.azure.cn` and `vault.usgovcloudapi.net` is
/// served by Azure Key Vault itself: Microsoft terminates TLS and checks the
/// bearer token, and whoever owns a vault there configures keys and access
/// policies but never sees a request's headers (its diagnostic logs record
/// the caller's identity claims, not the token). A hostile key document that
/// names its own vault therefore hands the token to Microsoft, not to the
/// attacker; that vault also refuses tokens issued by another tenant. What
/// such a vault could still do is unwrap a key the attacker wrapped, if it
/// admits the victim's identity: key substitution, which no host list
/// prevents (the vault is a genuine one) and the master-key allow-list
/// ([`crate::kms::ProviderOptions::allow_master_key`]) does. GCP is the same:
/// `cloudkms.googleapis.com` and `*.rep.googleapis.com` are Google's own
/// front ends, where no customer code runs.
pub(crate) fn is_public_host(kind: ProviderKind, endpoint: &Endpoint) -> bool {
    if endpoint.is_ip_literal() || endpoint.effective_port() != 443 {
        return false;
    }
    let h = endpoint.host();
    match kind {
        ProviderKind::Aws => is_aws_kms_host(h),
        ProviderKind::Azure => [
            "vault.azure.net",
            "managedhsm.azure.net",
            "vault.azure.cn",
            "vault.usgovcloudapi.net",
        ]
        .iter()
        .any(|s| under(h, s)),
        ProviderKind::Gcp => h == "cloudkms.googleapis.com" || under(h, "rep.googleapis.com"),
        ProviderKind::Local | ProviderKind::Kmip => false,
    }
}

/// AWS KMS's own hosts (lower case, no port):
/// `kms.<region>.amazonaws.com`, `kms-fips.<region>.amazonaws.com`, the
/// dual-stack `kms[-fips].<region>.api.aws`, China's
/// `kms.cn-<…>.amazonaws.com.cn`, and KMS interface endpoints
/// `vpce-<id>[-<suffix>][-<az>].kms[-fips].<region>.vpce.amazonaws.com`.
fn is_aws_kms_host(h: &str) -> bool {
    let Some((first, rest)) = h.split_once('.') else {
        return false;
    };
    let service = |s: &str| s == "kms" || s == "kms-fips";
    if service(first) {
        let Some((region, domain)) = rest.split_once('.') else {
            return false;
        };
        return aws_region_label(region)
            && match domain {
                "amazonaws.com" | "api.aws" => true,
                // China has no FIPS endpoints, and only its own regions.
                "amazonaws.com.cn" => first == "kms" && region.starts_with("cn-"),
                _ => false,
            };
    }
    if !vpce_label(first) {
        return false;
    }
    let Some((svc, rest)) = rest.split_once('.') else {
        return false;
    };
    let Some((region, domain)) = rest.split_once('.') else {
        return false;
    };
    // Customers' own PrivateLink services sit at `vpce-svc-…` in the
    // service position; `kms` there is AWS's KMS endpoint.
    service(svc) && aws_region_label(region) && domain == "vpce.amazonaws.com"
}

/// An interface endpoint's first label: `vpce-<hex id>`, then optional
/// dash-separated parts of lower-case letters and digits (the random
/// suffix, the availability zone).
fn vpce_label(label: &str) -> bool {
    let Some(rest) = label.strip_prefix("vpce-") else {
        return false;
    };
    let mut parts = rest.split('-');
    let id = parts.next().unwrap_or("");
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && parts.all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// An AWS region as a KMS host names it: at least three dash-separated
/// parts of lower-case letters and digits, the first letters only, the last
/// digits only (`us-east-1`, `us-gov-west-1`, `cn-north-1`,
/// `ap-southeast-4`). Stricter than [`valid_region`] on purpose: `s3`,
/// `s3-us-west-2`, `s3-website-us-east-1` and `compute-1` are not regions,
/// and `kms.s3.amazonaws.com` is the S3 bucket anyone may call `kms`.
fn aws_region_label(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    valid_region(region)
        && parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// What an invalid AWS region is told.
pub(crate) const INVALID_REGION: &str = "'region' must be 1 to 32 characters of [a-z0-9-]";

/// An AWS region name: `^[a-z0-9-]{1,32}$`.
pub(crate) fn valid_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The port of a KMIP endpoint that names none (IANA's `kmip` port).
pub(crate) const KMIP_DEFAULT_PORT: u16 = 5696;

/// The provider kinds a host allowed without one ([`AllowedHosts::allow`])
/// is allowed for: the cloud providers, whose endpoints are HTTPS on 443
/// by default. KMIP servers are named with their kind
/// ([`AllowedHosts::allow_for`]).
const UNSCOPED_KINDS: [ProviderKind; 3] =
    [ProviderKind::Aws, ProviderKind::Azure, ProviderKind::Gcp];

/// Hosts the application allowed beyond the public lists, each for one
/// provider kind and matched on host and port.
///
/// A host allowed for AWS is not thereby a KMIP server, nor the other way
/// round: a key document naming it for another kind of provider is refused
/// as if it were not allowed at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    hosts: Vec<(ProviderKind, Endpoint)>,
}

impl AllowedHosts {
    /// Allows `host[:port]` (no port: 443) for endpoints read from key
    /// documents of the cloud providers: AWS, Azure and GCP. Not for KMIP:
    /// a KMIP server is allowed with [`allow_for`](Self::allow_for).
    pub fn allow(&mut self, host: &str) -> Result<(), EndpointError> {
        for kind in UNSCOPED_KINDS {
            self.allow_for(kind, host)?;
        }
        Ok(())
    }

    /// Allows `host[:port]` for endpoints read from key documents of
    /// providers of `kind` only. Without a port: 443, or 5696 for KMIP. A
    /// local provider has no endpoint, so allowing one for it is refused.
    pub fn allow_for(&mut self, kind: ProviderKind, host: &str) -> Result<(), EndpointError> {
        let default_port = match kind {
            ProviderKind::Aws | ProviderKind::Azure | ProviderKind::Gcp => 443,
            ProviderKind::Kmip => KMIP_DEFAULT_PORT,
            ProviderKind::Local => {
                return Err(EndpointError {
                    reason: "a local provider has no endpoint to allow",
                });
            }
        };
        let e = Endpoint::parse(host, EndpointOrigin::KeyDocument)?;
        let port = e.port.unwrap_or(default_port);
        self.hosts.push((
            kind,
            Endpoint {
                port: Some(port),
                host: e.host,
            },
        ));
        Ok(())
    }

    /// Whether `endpoint` was allowed for any provider kind.
    pub fn contains(&self, endpoint: &Endpoint) -> bool {
        self.hosts
            .iter()
            .any(|(_, a)| same_host_and_port(a, endpoint))
    }

    /// Whether `endpoint` was allowed for providers of `kind`.
    pub fn contains_for(&self, kind: ProviderKind, endpoint: &Endpoint) -> bool {
        self.hosts
            .iter()
            .any(|(k, a)| *k == kind && same_host_and_port(a, endpoint))
    }

    /// Whether an endpoint read from a key document may be called for a
    /// provider of `kind`: a public host of that kind, or allowed for it.
    pub fn permits(&self, kind: ProviderKind, endpoint: &Endpoint) -> bool {
        is_public_host(kind, endpoint) || self.contains_for(kind, endpoint)
    }
}

/// An allowed entry (its port filled in) against an endpoint from a key
/// document (a KMIP one has its port filled in by the caller).
fn same_host_and_port(allowed: &Endpoint, endpoint: &Endpoint) -> bool {
    allowed.host == endpoint.host && allowed.port == Some(endpoint.effective_port())
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
