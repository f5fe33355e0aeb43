//! Batch GCD over a corpus of RSA moduli: product and remainder trees.
