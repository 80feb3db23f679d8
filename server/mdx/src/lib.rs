//! datakube-mdx
