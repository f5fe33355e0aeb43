//! The misp-objects templates d4 fills (name, template uuid and version, meta-category,
//! description) and, per object relation we write, its MISP attribute type, category and
//! whether correlation is off, as the templates' `definition.json` files state them. An
//! attribute's category is the template's first category for that relation, else the
//! type's default category of MISP's `describeTypes.json`.

use uuid::Uuid;

/// One object relation of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    pub name: &'static str,
    /// The MISP attribute type (`ip-dst`, `datetime`…).
    pub kind: &'static str,
    pub category: &'static str,
    pub disable_correlation: bool,
}

/// A misp-objects template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub name: &'static str,
    pub uuid: &'static str,
    pub version: u32,
    pub meta_category: &'static str,
    pub description: &'static str,
    pub relations: &'static [Relation],
}

impl Template {
    /// The relation named `name`, if this template has it (among those d4 writes).
    pub fn relation(&self, name: &str) -> Option<&'static Relation> {
        self.relations.iter().find(|r| r.name == name)
    }

    pub fn template_uuid(&self) -> Uuid {
        Uuid::parse_str(self.uuid).unwrap_or(Uuid::nil())
    }
}

const NET: &str = "Network activity";
const OTHER: &str = "Other";

const fn rel(
    name: &'static str,
    kind: &'static str,
    category: &'static str,
    disable_correlation: bool,
) -> Relation {
    Relation {
        name,
        kind,
        category,
        disable_correlation,
    }
}

pub const PASSIVE_DNS: Template = Template {
    name: "passive-dns",
    uuid: "b77b7b1c-66ab-4a41-8da4-83810f6d2d6c",
    version: 5,
    meta_category: "network",
    description: "Passive DNS records as expressed in draft-dulaunoy-dnsop-passive-dns-cof-07. See https://tools.ietf.org/id/draft-dulaunoy-dnsop-passive-dns-cof-07.html",
    relations: &[
        rel("rrname", "text", NET, false),
        rel("rrtype", "text", NET, true),
        rel("rdata", "text", OTHER, false),
        rel("time_first", "datetime", OTHER, true),
        rel("time_last", "datetime", OTHER, true),
        rel("count", "counter", OTHER, true),
        rel("bailiwick", "domain", NET, false),
        rel("sensor_id", "text", OTHER, false),
        rel("origin", "text", OTHER, false),
    ],
};

pub const X509: Template = Template {
    name: "x509",
    uuid: "d1ab756a-26b5-4349-9f43-765630f0911c",
    version: 14,
    meta_category: "network",
    description: "x509 object describing a X.509 certificate",
    relations: &[
        rel("x509-fingerprint-sha1", "x509-fingerprint-sha1", NET, false),
        rel(
            "x509-fingerprint-sha256",
            "x509-fingerprint-sha256",
            NET,
            false,
        ),
        rel("subject", "text", OTHER, false),
        rel("issuer", "text", OTHER, false),
        rel("serial-number", "text", OTHER, false),
        rel("validity-not-before", "datetime", OTHER, false),
        rel("validity-not-after", "datetime", OTHER, false),
        rel("pubkey-info-algorithm", "text", OTHER, true),
        rel("pubkey-info-size", "text", OTHER, true),
        rel("pubkey-info-modulus", "text", OTHER, false),
        rel("pubkey-info-exponent", "text", OTHER, false),
        rel("is_ca", "boolean", OTHER, true),
        rel("self_signed", "boolean", OTHER, true),
        rel("dns_names", "hostname", NET, false),
        rel("pem", "text", OTHER, false),
        rel("raw-base64", "text", OTHER, false),
    ],
};

pub const JA3: Template = Template {
    name: "ja3",
    uuid: "09b45449-5d6e-492c-a68a-cb2e188cbfac",
    version: 4,
    meta_category: "network",
    description: "JA3 is a new technique for creating SSL client fingerprints that are easy to produce and can be easily shared for threat intelligence. Fingerprints are composed of Client Hello packet; SSL Version, Accepted Ciphers, List of Extensions, Elliptic Curves, and Elliptic Curve Formats. https://github.com/salesforce/ja3",
    relations: &[
        rel("ja3-fingerprint-md5", "ja3-fingerprint-md5", NET, false),
        rel("ip-src", "ip-src", NET, false),
        rel("ip-dst", "ip-dst", NET, false),
        rel("first-seen", "datetime", OTHER, false),
        rel("last-seen", "datetime", OTHER, false),
        rel("description", "text", OTHER, false),
    ],
};

pub const JA3S: Template = Template {
    name: "ja3s",
    uuid: "7f377f66-d128-4b97-897f-592d06ba2ff7",
    version: 5,
    meta_category: "network",
    description: "JA3S is JA3 for the Server side of the SSL/TLS communication and fingerprints how servers respond to particular clients. JA3S fingerprints are composed of Server Hello packet; SSL Version, Cipher, SSLExtensions. https://github.com/salesforce/ja3",
    relations: &[
        rel("ja3-fingerprint-md5", "ja3-fingerprint-md5", NET, false),
        rel("ja3s-fingerprint-md5", "ja3-fingerprint-md5", NET, false),
        rel("ip-src", "ip-src", NET, false),
        rel("ip-dst", "ip-dst", NET, false),
        rel("domain", "domain", NET, false),
        rel("first-seen", "datetime", OTHER, false),
        rel("last-seen", "datetime", OTHER, false),
    ],
};

pub const JA4_PLUS: Template = Template {
    name: "ja4-plus",
    uuid: "2c15c75e-e7db-4b62-8d17-633e7571818f",
    version: 2,
    meta_category: "network",
    description: "JA4 is a technique for creating network fingerprints that are easy to produce and can be easily shared for threat intelligence. https://github.com/FoxIO-LLC/ja4/blob/main/technical_details/README.md",
    relations: &[
        rel("ja4-fingerprint", "text", OTHER, false),
        rel("ja4-type", "text", OTHER, false),
        rel("ip-src", "ip-src", NET, false),
        rel("description", "text", OTHER, false),
    ],
};

pub const DDOS: Template = Template {
    name: "ddos",
    uuid: "e2f124d6-f57c-4f93-99e6-8450545fa05d",
    version: 10,
    meta_category: "network",
    description: "DDoS object describes a current DDoS activity from a specific or/and to a specific target. Type of DDoS can be attached to the object as a taxonomy or using the type field.",
    relations: &[
        rel("ip-dst", "ip-dst", NET, false),
        rel("type", "text", OTHER, true),
        rel("capture-origin", "text", OTHER, true),
        rel("protocol", "text", OTHER, true),
        rel("dst-port", "port", NET, false),
        rel("total-pps", "integer", OTHER, true),
        rel("total-packets-sent", "counter", OTHER, true),
        rel("first-seen", "datetime", OTHER, false),
        rel("last-seen", "datetime", OTHER, false),
    ],
};

pub const CRYPTO_MATERIAL: Template = Template {
    name: "crypto-material",
    uuid: "50677f82-ec9c-4484-bb29-2519cfe56823",
    version: 4,
    meta_category: "misc",
    description: "Cryptographic materials such as public or/and private keys.",
    relations: &[
        rel("type", "text", OTHER, true),
        rel("origin", "text", OTHER, true),
        rel("modulus", "text", OTHER, false),
        rel("e", "text", OTHER, false),
        rel("p", "text", OTHER, false),
        rel("q", "text", OTHER, false),
        rel("rsa-modulus-size", "text", OTHER, true),
        rel("text", "text", OTHER, false),
    ],
};

pub const IP_PORT: Template = Template {
    name: "ip-port",
    uuid: "9f8cea74-16fe-4968-a2b4-026676949ac6",
    version: 10,
    meta_category: "network",
    description: "An IP address (or domain or hostname) and a port seen as a tuple (or as a triple) in a specific time frame.",
    relations: &[
        rel("ip", "ip-dst", NET, false),
        rel("dst-port", "port", NET, false),
        rel("first-seen", "datetime", OTHER, false),
        rel("last-seen", "datetime", OTHER, false),
    ],
};

/// Every template d4 fills.
pub const ALL: [&Template; 8] = [
    &PASSIVE_DNS,
    &X509,
    &JA3,
    &JA3S,
    &JA4_PLUS,
    &DDOS,
    &CRYPTO_MATERIAL,
    &IP_PORT,
];
