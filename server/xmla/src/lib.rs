//! datakube-xmla: XMLA over SOAP.
pub mod soap;

#[cfg(test)]
mod soap_tests;
