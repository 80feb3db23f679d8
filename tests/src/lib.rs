//! End-to-end tests live in tests/tests/. This library holds what tests and tools share:
//! [`foodmart`] writes the FoodMart data set as Parquet (binary `foodmart-parquet`).

pub mod foodmart;
