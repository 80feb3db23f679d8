//! datakube-model
