//! The extension-derived fields of Go's `x509.Certificate` (Go 1.12 parsing rules): key
//! usage bits, extended key usages in order, basic constraints, key identifiers, authority
//! information access, name constraints, CRL distribution points, policy identifiers, the
//! raw extension list and the critical extensions Go does not handle.

use std::net::IpAddr;

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::enc;

/// Name constraints as Go's fields.
#[derive(Debug, Default)]
pub struct NameConstraints {
    pub permitted_dns: Vec<String>,
    pub excluded_dns: Vec<String>,
    pub permitted_ip: Vec<(IpAddr, Vec<u8>)>,
    pub excluded_ip: Vec<(IpAddr, Vec<u8>)>,
    pub permitted_email: Vec<String>,
    pub excluded_email: Vec<String>,
    pub permitted_uri: Vec<String>,
    pub excluded_uri: Vec<String>,
}

fn ipnets_json(v: &[(IpAddr, Vec<u8>)]) -> String {
    if v.is_empty() {
        return "null".to_owned();
    }
    let items: Vec<String> = v
        .iter()
        .map(|(ip, mask)| {
            enc::object(&[
                ("IP", enc::string(&enc::ip_text(ip))),
                ("Mask", enc::bytes(Some(mask))),
            ])
        })
        .collect();
    format!("[{}]", items.join(","))
}

impl NameConstraints {
    /// `PermittedIPRanges` (`[]*net.IPNet`: `{"IP": text, "Mask": base64}`).
    pub fn permitted_ip_json(&self) -> String {
        ipnets_json(&self.permitted_ip)
    }

    /// `ExcludedIPRanges`.
    pub fn excluded_ip_json(&self) -> String {
        ipnets_json(&self.excluded_ip)
    }

    fn add(&mut self, permitted: bool, gn: &GeneralName<'_>) {
        match gn {
            GeneralName::DNSName(s) => {
                let v = if permitted {
                    &mut self.permitted_dns
                } else {
                    &mut self.excluded_dns
                };
                v.push((*s).to_owned());
            }
            GeneralName::RFC822Name(s) => {
                let v = if permitted {
                    &mut self.permitted_email
                } else {
                    &mut self.excluded_email
                };
                v.push((*s).to_owned());
            }
            GeneralName::URI(s) => {
                let v = if permitted {
                    &mut self.permitted_uri
                } else {
                    &mut self.excluded_uri
                };
                v.push((*s).to_owned());
            }
            GeneralName::IPAddress(b) => {
                let net = if b.len() == 8 {
                    <[u8; 4]>::try_from(&b[..4])
                        .ok()
                        .map(|a| (IpAddr::from(a), b[4..].to_vec()))
                } else if b.len() == 32 {
                    <[u8; 16]>::try_from(&b[..16])
                        .ok()
                        .map(|a| (IpAddr::from(a), b[16..].to_vec()))
                } else {
                    None
                };
                if let Some(net) = net {
                    let v = if permitted {
                        &mut self.permitted_ip
                    } else {
                        &mut self.excluded_ip
                    };
                    v.push(net);
                }
            }
            _ => {}
        }
    }
}

/// The extension-derived fields.
#[derive(Debug, Default)]
pub struct Ext {
    pub key_usage: u16,
    /// `Extensions` as JSON.
    pub extensions: String,
    pub unhandled_critical: Vec<String>,
    /// `ExtKeyUsage` as JSON.
    pub ext_key_usage: String,
    pub unknown_ext_key_usage: Vec<String>,
    pub basic_constraints_valid: bool,
    pub is_ca: bool,
    pub max_path_len: i64,
    pub max_path_len_zero: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    pub ocsp_server: Vec<String>,
    pub issuing_certificate_url: Vec<String>,
    pub name_constraints_critical: bool,
    pub nc: NameConstraints,
    pub crl_distribution_points: Vec<String>,
    pub policy_identifiers: Vec<String>,
}

/// Go's `ExtKeyUsage` value of a known purpose OID.
fn ext_key_usage(oid: &str) -> Option<u8> {
    Some(match oid {
        "2.5.29.37.0" => 0,
        "1.3.6.1.5.5.7.3.1" => 1,
        "1.3.6.1.5.5.7.3.2" => 2,
        "1.3.6.1.5.5.7.3.3" => 3,
        "1.3.6.1.5.5.7.3.4" => 4,
        "1.3.6.1.5.5.7.3.5" => 5,
        "1.3.6.1.5.5.7.3.6" => 6,
        "1.3.6.1.5.5.7.3.7" => 7,
        "1.3.6.1.5.5.7.3.8" => 8,
        "1.3.6.1.5.5.7.3.9" => 9,
        "1.3.6.1.4.1.311.10.3.3" => 10,
        "2.16.840.1.113730.4.1" => 11,
        "1.3.6.1.4.1.311.2.1.22" => 12,
        "1.3.6.1.4.1.311.61.1.1" => 13,
        _ => return None,
    })
}

const OID_AIA: &str = "1.3.6.1.5.5.7.1.1";
const OID_OCSP: &str = "1.3.6.1.5.5.7.48.1";
const OID_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";

/// Read the extension-derived fields; the SAN lists tell whether Go handled the SAN.
pub fn read(
    cert: &X509Certificate<'_>,
    dns: &[String],
    ips: &[IpAddr],
    emails: &[String],
    uris: &[String],
) -> Ext {
    let mut x = Ext {
        ext_key_usage: "null".to_owned(),
        extensions: "null".to_owned(),
        ..Ext::default()
    };
    let exts = cert.extensions();
    let mut raw = Vec::with_capacity(exts.len());
    let mut ekus: Vec<u8> = Vec::new();
    for e in exts {
        let id = e.oid.to_id_string();
        raw.push(enc::object(&[
            ("Id", enc::oid(&id)),
            ("Critical", e.critical.to_string()),
            ("Value", enc::bytes(Some(e.value))),
        ]));
        let mut handled = true;
        match id.as_str() {
            "2.5.29.15" => {
                if let ParsedExtension::KeyUsage(k) = e.parsed_extension() {
                    x.key_usage = k.flags & 0x1ff;
                }
            }
            "2.5.29.19" => {
                if let ParsedExtension::BasicConstraints(bc) = e.parsed_extension() {
                    x.basic_constraints_valid = true;
                    x.is_ca = bc.ca;
                    x.max_path_len = bc.path_len_constraint.map_or(-1, i64::from);
                    x.max_path_len_zero = x.max_path_len == 0;
                }
            }
            "2.5.29.17" => {
                handled =
                    !(dns.is_empty() && ips.is_empty() && emails.is_empty() && uris.is_empty());
            }
            "2.5.29.37" => {
                if let Ok((_, list)) = <Vec<Oid>>::from_der(e.value) {
                    for o in list {
                        let s = o.to_id_string();
                        match ext_key_usage(&s) {
                            Some(v) => ekus.push(v),
                            None => x.unknown_ext_key_usage.push(s),
                        }
                    }
                }
            }
            "2.5.29.14" => {
                if let ParsedExtension::SubjectKeyIdentifier(k) = e.parsed_extension() {
                    x.subject_key_id = Some(k.0.to_vec());
                }
            }
            "2.5.29.35" => {
                if let ParsedExtension::AuthorityKeyIdentifier(a) = e.parsed_extension() {
                    x.authority_key_id = a.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
            }
            "2.5.29.30" => {
                x.name_constraints_critical = e.critical;
                if let ParsedExtension::NameConstraints(nc) = e.parsed_extension() {
                    for s in nc.permitted_subtrees.iter().flatten() {
                        x.nc.add(true, &s.base);
                    }
                    for s in nc.excluded_subtrees.iter().flatten() {
                        x.nc.add(false, &s.base);
                    }
                }
            }
            "2.5.29.31" => {
                if let ParsedExtension::CRLDistributionPoints(dps) = e.parsed_extension() {
                    for dp in dps.iter() {
                        if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point
                        {
                            for n in names {
                                if let GeneralName::URI(u) = n {
                                    x.crl_distribution_points.push((*u).to_owned());
                                }
                            }
                        }
                    }
                }
            }
            "2.5.29.32" => {
                if let ParsedExtension::CertificatePolicies(ps) = e.parsed_extension() {
                    for p in ps {
                        x.policy_identifiers.push(p.policy_id.to_id_string());
                    }
                }
            }
            OID_AIA => {
                if let ParsedExtension::AuthorityInfoAccess(aia) = e.parsed_extension() {
                    for ad in aia.iter() {
                        if let GeneralName::URI(u) = &ad.access_location {
                            match ad.access_method.to_id_string().as_str() {
                                OID_OCSP => x.ocsp_server.push((*u).to_owned()),
                                OID_CA_ISSUERS => x.issuing_certificate_url.push((*u).to_owned()),
                                _ => {}
                            }
                        }
                    }
                }
            }
            _ => handled = false,
        }
        if e.critical && !handled {
            x.unhandled_critical.push(id);
        }
    }
    if !raw.is_empty() {
        x.extensions = format!("[{}]", raw.join(","));
    }
    if !ekus.is_empty() {
        let items: Vec<String> = ekus.iter().map(u8::to_string).collect();
        x.ext_key_usage = format!("[{}]", items.join(","));
    }
    x
}
