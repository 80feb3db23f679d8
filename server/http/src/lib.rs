//! datakube-http
