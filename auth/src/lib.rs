//! datakube-auth
