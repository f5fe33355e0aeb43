//! Reading public keys: PEM and DER (X.509 certificates, PKCS#1, PKCS#8,
//! SubjectPublicKeyInfo), OpenSSH public keys and hex moduli.
