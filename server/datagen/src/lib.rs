//! datakube-datagen
